"""Greedy and idle clients are contained, each with its documented close code."""

from __future__ import annotations

import pytest
from channels.testing import WebsocketCommunicator

from live.protocol.limits import CountsPerAddress, MessageRateLimiter
from racing.asgi import application
from tests import factories

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("stop_live_tasks")]


@pytest.fixture
def race_path() -> str:
    return f"/ws/races/{factories.race_create(starter_count=2).pk}"


async def connect(path: str, address: str = "203.0.113.7") -> tuple[WebsocketCommunicator, dict]:
    communicator = WebsocketCommunicator(application, path)
    communicator.scope["client"] = (address, 50000)
    connected, _ = await communicator.connect()
    assert connected
    return communicator, await communicator.receive_output(timeout=5)


async def test_ping_gets_pong(race_path):
    communicator, _ = await connect(race_path)

    await communicator.send_json_to({"type": "ping"})

    assert await communicator.receive_json_from() == {"type": "pong"}
    await communicator.disconnect()


async def test_a_flood_of_messages_is_closed_with_4429_and_others_carry_on(race_path, settings):
    settings.WEBSOCKET_MAX_MESSAGES_PER_S = 5
    flooder, _ = await connect(race_path)
    bystander, _ = await connect(race_path, address="198.51.100.2")

    for _ in range(30):
        await flooder.send_json_to({"type": "ping"})
    outputs = [await flooder.receive_output(timeout=5) for _ in range(11)]

    assert [o["type"] for o in outputs[:10]] == ["websocket.send"] * 10  # the burst allowance
    assert outputs[10]["type"] == "websocket.close" and outputs[10]["code"] == 4429
    assert "Too many messages" in outputs[10]["reason"]
    await bystander.send_json_to({"type": "ping"})
    assert await bystander.receive_json_from() == {"type": "pong"}
    await bystander.disconnect()


async def test_too_many_connections_from_one_address_are_closed_with_4429(race_path, settings):
    settings.WEBSOCKET_MAX_CONNECTIONS_PER_ADDRESS = 2
    first, _ = await connect(race_path)
    second, _ = await connect(race_path)

    third, closing = await connect(race_path)
    elsewhere, welcome = await connect(race_path, address="198.51.100.9")

    assert closing["type"] == "websocket.close" and closing["code"] == 4429
    assert "Too many connections" in closing["reason"]
    assert welcome["type"] == "websocket.send"
    await first.disconnect()
    fourth, again = await connect(race_path)
    assert again["type"] == "websocket.send"  # a freed place is free again
    for communicator in (second, elsewhere, fourth):
        await communicator.disconnect()


async def test_a_connection_that_never_sends_anything_is_kept_and_served(race_path, settings):
    # Screens in a bar only listen; ping/pong (Daphne's keepalive) is what finds dead peers.
    idle, _ = await connect(race_path)

    assert await idle.receive_nothing(timeout=0.5)
    await idle.send_json_to({"type": "ping"})
    assert await idle.receive_json_from() == {"type": "pong"}
    await idle.disconnect()


def test_the_rate_limiter_refills_at_its_rate():
    now = [0.0]
    limiter = MessageRateLimiter(rate_per_s=2, burst=2, clock=lambda: now[0])

    assert [limiter.allow() for _ in range(3)] == [True, True, False]
    now[0] = 0.5
    assert [limiter.allow() for _ in range(2)] == [True, False]


def test_connections_per_address_are_counted_and_released():
    counter = CountsPerAddress()

    assert counter.acquire("a", limit=1) and not counter.acquire("a", limit=1)
    counter.release("a")
    assert counter.acquire("a", limit=1) and counter.counts == {"a": 1}


async def test_every_connection_the_server_closes_gives_back_its_place_at_once(race_path, settings):
    # A client closed for flooding may never answer the close: its address count is given back
    # anyway, at once.
    from live.protocol.limits import connections_per_address

    settings.WEBSOCKET_MAX_MESSAGES_PER_S = 1
    flooder, _ = await connect(race_path, address="192.0.2.1")
    for _ in range(5):
        await flooder.send_json_to({"type": "ping"})
    while (await flooder.receive_output(timeout=5))["type"] != "websocket.close":
        pass

    assert "192.0.2.1" not in connections_per_address.counts


async def test_a_consumer_killed_by_the_server_gives_back_everything_it_held(race_path, monkeypatch):
    # Daphne cancels a consumer still busy 10 s after its client vanished ("took too long to
    # shut down and was killed"); its disconnect never runs. The counts come back all the same.
    import asyncio

    import live.protocol.streams
    from live.market.supervisor import simulation_supervisor
    from live.protocol.fanout import race_fanout
    from live.protocol.limits import connections_per_address

    stuck = asyncio.Event()

    async def replay_read_that_never_ends(race_id, plan):
        stuck.set()
        await asyncio.Event().wait()

    import datetime as dt

    from channels.db import database_sync_to_async

    from races.models import Starter
    from races.services import odds_snapshot_record

    race_id = int(race_path.rsplit("/", 1)[1])
    horse_id = await database_sync_to_async(lambda: Starter.objects.filter(race_id=race_id).first().horse_id)()
    for n in (1, 2, 3):  # a race with updates to replay
        await database_sync_to_async(odds_snapshot_record)(
            race_id=race_id, odds=[(horse_id, 2.0 + n)], source="feed",
            taken_at=dt.datetime(2026, 12, 4, 6, 0, n, tzinfo=dt.UTC),
        )  # fmt: skip
    monkeypatch.setattr(live.protocol.streams, "_race_updates_read", replay_read_that_never_ends)
    communicator, _ = await connect(race_path, address="192.0.2.3")
    await communicator.send_json_to({"type": "subscribe", "race_id": race_id, "last_seq": 0})
    await communicator.send_json_to({"type": "subscribe", "race_id": race_id, "last_seq": 0})
    assert connections_per_address.counts["192.0.2.3"] == 1
    await asyncio.wait_for(stuck.wait(), 5)

    communicator.future.cancel()  # what Daphne's application_checker does
    await asyncio.gather(communicator.future, return_exceptions=True)

    assert "192.0.2.3" not in connections_per_address.counts
    assert race_id not in race_fanout().subscribers
    assert race_id not in simulation_supervisor().viewers
