"""/ws/live: one connection following many races, each exactly as /ws/races/{id} sends it."""

from __future__ import annotations

import datetime as dt

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator

from live.protocol import presence
from live.protocol.fanout import race_fanout
from live.protocol.limits import connections_per_address
from races.models import Race
from races.services import odds_snapshot_record, race_reset, race_result_record
from racing.asgi import application
from tests import factories
from tests.spec import assert_valid

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("stop_live_tasks")]

START = dt.datetime(2026, 12, 4, 6, 0, tzinfo=dt.UTC)
# An official result posted while the market is open: the race closes, is official, its result.
RESULT_UPDATES = ["race_status", "race_status", "result_update"]


@pytest.fixture(autouse=True)
def no_simulation(settings):
    settings.SIMULATION_ENABLED = False  # each test stores every update itself


@database_sync_to_async
def open_race(starter_count: int = 4) -> Race:
    # Its market is open: each odds update is one update.
    return factories.race_create(starter_count=starter_count, status=Race.Status.OPEN)


def horse_ids(race: Race) -> list[int]:
    return list(race.starters.order_by("runner_number").values_list("horse_id", flat=True))


@database_sync_to_async
def record_odds(race: Race, n: int) -> None:
    """Store and publish the race's n-th odds (its first horse at 2 + n)."""
    prices = [(horse, 2.0 + n + i) for i, horse in enumerate(horse_ids(race))]
    odds_snapshot_record(race_id=race.pk, odds=prices, source="feed", taken_at=START + dt.timedelta(seconds=n))


@database_sync_to_async
def record_result(race: Race) -> None:
    placings = {h: i for i, h in enumerate(horse_ids(race), 1)}
    race_result_record(race_id=race.pk, placings=placings, declared_at=START + dt.timedelta(minutes=5), source="feed")


@database_sync_to_async
def epoch_of(race: Race) -> str:
    return Race.objects.get(pk=race.pk).updates_epoch


async def live_socket() -> WebsocketCommunicator:
    communicator = WebsocketCommunicator(application, "/ws/live")
    assert (await communicator.connect())[0]
    return communicator


async def receive(communicator: WebsocketCommunicator, count: int) -> list[dict]:
    return [assert_valid(await communicator.receive_json_from(timeout=5)) for _ in range(count)]


def kinds(messages: list[dict]) -> list[tuple[str, int, int | None]]:
    return [(m["type"], m["race_id"], m.get("seq")) for m in messages]


async def follow(communicator: WebsocketCommunicator, race: Race, **resume) -> list[dict]:
    """Subscribe to the race and return its initial_state and subscribed."""
    await communicator.send_json_to({"type": "subscribe", "race_id": race.pk, **resume})
    opening = await receive(communicator, 2)
    assert [m["type"] for m in opening] == ["initial_state", "subscribed"]
    return opening


async def test_nothing_is_sent_until_the_client_subscribes():
    client = await live_socket()

    assert await client.receive_nothing(timeout=0.2)
    await client.send_json_to({"type": "ping"})
    assert await receive(client, 1) == [{"type": "pong"}]
    await client.disconnect()


async def test_each_race_subscribed_to_streams_as_its_own_socket_would(settings):
    first, second = await open_race(), await open_race()
    await record_odds(first, 1)
    client = await live_socket()

    initial, subscribed = await follow(client, first)
    assert initial["race_id"] == first.pk and initial["epoch"] == await epoch_of(first)
    assert (subscribed["race_id"], subscribed["epoch"], subscribed["seq"]) == (first.pk, initial["epoch"], 1)
    assert kinds(await receive(client, 1)) == [("odds_update", first.pk, 1)]  # its latest, at once
    await follow(client, second)  # no update yet: nothing more
    assert await client.receive_nothing(timeout=0.2)

    await record_odds(second, 1)
    await record_odds(first, 2)
    await record_result(second)

    assert kinds(await receive(client, 5)) == [
        ("odds_update", second.pk, 1),
        ("odds_update", first.pk, 2),
        *[(kind, second.pk, seq) for seq, kind in enumerate(RESULT_UPDATES, 2)],
    ]
    assert await client.receive_nothing(timeout=0.2)
    await client.disconnect()


async def test_a_race_unsubscribed_from_sends_nothing_more_and_the_others_carry_on():
    first, second = await open_race(), await open_race()
    client = await live_socket()
    await follow(client, first)
    await follow(client, second)

    await client.send_json_to({"type": "unsubscribe", "race_id": first.pk})
    assert await receive(client, 1) == [{"type": "unsubscribed", "race_id": first.pk}]
    await record_odds(first, 1)
    await record_odds(second, 1)

    assert kinds(await receive(client, 1)) == [("odds_update", second.pk, 1)]
    assert await client.receive_nothing(timeout=0.2)
    assert first.pk not in race_fanout().subscribers
    await client.send_json_to({"type": "unsubscribe", "race_id": first.pk})  # again: the same answer
    assert await receive(client, 1) == [{"type": "unsubscribed", "race_id": first.pk}]
    await client.disconnect()


async def test_subscribing_again_after_unsubscribing_starts_the_race_afresh():
    race = await open_race()
    await record_odds(race, 1)
    client = await live_socket()
    await follow(client, race)
    await receive(client, 1)
    await client.send_json_to({"type": "unsubscribe", "race_id": race.pk})
    await receive(client, 1)

    await follow(client, race)

    assert kinds(await receive(client, 1)) == [("odds_update", race.pk, 1)]
    await client.disconnect()


async def test_each_race_resumes_from_its_own_last_seq():
    first, second = await open_race(), await open_race()
    for n in (1, 2, 3):
        await record_odds(first, n)
    await record_odds(second, 1)
    client = await live_socket()

    _, subscribed = await follow(client, first, last_seq=1, epoch=await epoch_of(first))
    assert subscribed["resumed"] is True
    assert kinds(await receive(client, 2)) == [("odds_update", first.pk, 2), ("odds_update", first.pk, 3)]
    _, subscribed = await follow(client, second, last_seq=0, epoch="not-its-epoch")
    assert subscribed["resumed"] is False  # starts over: its latest follows
    assert kinds(await receive(client, 1)) == [("odds_update", second.pk, 1)]
    assert await client.receive_nothing(timeout=0.2)
    await client.disconnect()


async def test_a_subscribe_to_a_race_followed_already_sends_only_what_this_connection_has_not():
    race = await open_race()
    await record_odds(race, 1)
    client = await live_socket()
    await follow(client, race)
    await receive(client, 1)
    await record_odds(race, 2)
    await receive(client, 1)

    await client.send_json_to({"type": "subscribe", "race_id": race.pk})
    (subscribed,) = await receive(client, 1)
    await client.send_json_to({"type": "subscribe", "race_id": race.pk, "last_seq": 0, "epoch": subscribed["epoch"]})
    (resumed,) = await receive(client, 1)

    assert (subscribed["type"], subscribed["seq"], "resumed" in subscribed) == ("subscribed", 2, False)
    assert (resumed["type"], resumed["resumed"]) == ("subscribed", True)
    assert await client.receive_nothing(timeout=0.2)  # 1 and 2 went out on this connection already
    await client.disconnect()


@pytest.mark.parametrize("race_id", [999_999, 0, -1, 2**63, 10**30])
async def test_a_race_that_is_not_there_is_an_error_naming_it_and_the_connection_carries_on(race_id):
    race = await open_race()
    client = await live_socket()
    await follow(client, race)

    await client.send_json_to({"type": "subscribe", "race_id": race_id})
    (error,) = await receive(client, 1)

    assert error == {
        "type": "error",
        "code": 4004,
        "message": f"Race not found: no race with id {race_id}",
        "race_id": race_id,
    }
    assert race_id not in race_fanout().subscribers
    await record_odds(race, 1)
    assert kinds(await receive(client, 1)) == [("odds_update", race.pk, 1)]
    await client.disconnect()


async def test_past_the_subscription_limit_a_subscribe_is_refused_until_one_is_dropped(settings):
    settings.WEBSOCKET_MAX_SUBSCRIPTIONS = 2
    settings.WEBSOCKET_MAX_MESSAGES_PER_S = 100
    first, second, third = await open_race(), await open_race(), await open_race()
    client = await live_socket()
    await follow(client, first)
    await follow(client, second)

    await client.send_json_to({"type": "subscribe", "race_id": third.pk})
    (refused,) = await receive(client, 1)
    await client.send_json_to({"type": "subscribe", "race_id": first.pk})  # followed already: fine
    (again,) = await receive(client, 1)
    await client.send_json_to({"type": "unsubscribe", "race_id": second.pk})
    await receive(client, 1)

    assert (refused["code"], refused["race_id"]) == (4429, third.pk)
    assert refused["message"] == "race_id: at most 2 subscriptions on one connection; unsubscribe from one first."
    assert third.pk not in race_fanout().subscribers
    assert again["type"] == "subscribed"
    await follow(client, third)
    await client.disconnect()


@pytest.mark.parametrize(
    ("message", "error"),
    [
        ({"type": "subscribe"}, "race_id: This field is required (or meeting_id, or date)."),
        ({"type": "unsubscribe"}, "race_id: This field is required (or meeting_id, or date)."),
        ({"type": "subscribe", "race_id": "1"}, "race_id: must be an integer."),
        ({"type": "unsubscribe", "race_id": 1.5}, "race_id: must be an integer."),
        ({"type": "subscribe", "race_id": 1, "last_seq": -1}, "last_seq: must be 0 or more."),
        ({"type": "follow", "race_id": 1}, 'type: unknown message type "follow"; expected one of: subscribe, unsubscribe, ping.'),
    ],
)  # fmt: skip
async def test_bad_input_is_answered_as_on_a_races_socket(message, error):
    client = await live_socket()

    await client.send_json_to(message)
    await client.send_to(text_data="not JSON")

    assert await receive(client, 2) == [
        {"type": "error", "code": 4400, "message": error},
        {"type": "error", "code": 4400, "message": "invalid JSON"},
    ]
    await client.disconnect()


async def test_a_reset_race_is_dropped_with_an_error_and_can_be_followed_afresh():
    race, other = await open_race(), await open_race()
    client = await live_socket()
    await follow(client, race)
    await follow(client, other)
    old_epoch = await epoch_of(race)

    await database_sync_to_async(race_reset)(race_id=race.pk)
    await record_odds(race, 1)  # the first update of its new numbering
    (error,) = await receive(client, 1)
    await record_odds(other, 1)

    assert (error["type"], error["code"], error["race_id"]) == ("error", 4409, race.pk)
    assert kinds(await receive(client, 1)) == [("odds_update", other.pk, 1)]
    initial, _ = await follow(client, race)
    assert initial["epoch"] != old_epoch
    await client.disconnect()


async def test_every_race_followed_is_given_back_when_the_connection_ends():
    races = [await open_race() for _ in range(3)]
    watching: dict[int, int] = {}

    class Viewers:
        def viewer_joined(self, race_id: int) -> None:
            watching[race_id] = watching.get(race_id, 0) + 1

        def viewer_left(self, race_id: int) -> None:
            watching[race_id] -= 1

    viewers = Viewers()
    presence.listen(lambda: viewers)
    try:
        client = await live_socket()
        for race in races:
            await follow(client, race)
        assert watching == {race.pk: 1 for race in races}
        await client.send_json_to({"type": "unsubscribe", "race_id": races[0].pk})
        await receive(client, 1)
        assert watching[races[0].pk] == 0

        await client.disconnect()
        await client.wait()
    finally:
        presence._listeners.remove(presence._listeners[-1])

    assert watching == {race.pk: 0 for race in races}
    assert not any(race.pk in race_fanout().subscribers for race in races)
    assert connections_per_address.total == 0
