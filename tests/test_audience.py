"""Viewer counts: each process's connections per race, summed across processes through Redis
with nothing counted up and down by hand, so that a process that dies leaves no phantom viewers."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator

from live.protocol.audience import RedisAudienceStore
from races.models import Race
from racing.asgi import application
from tests import factories
from tests.spec import assert_valid


@pytest.fixture
async def stores(redis_url):
    """Two processes' stores on the shared Redis, under a prefix of this test's own."""
    prefix = f"test-audience-{uuid.uuid4().hex[:8]}"
    made = [RedisAudienceStore(redis_url=redis_url, prefix=prefix, identity=name, ttl_s=0.5) for name in ("a", "b")]
    yield made
    keys = [key async for key in made[0].redis.scan_iter(match=f"{prefix}:*")]
    if keys:
        await made[0].redis.delete(*keys)
    for store in made:
        await store.close()


async def test_each_races_viewers_are_summed_across_processes(stores):
    first, second = stores

    await first.publish(Counter({7: 3, 8: 1}))
    await second.publish(Counter({7: 2}))

    assert await first.totals([7, 8, 9]) == {7: 5, 8: 1, 9: 0}
    assert await second.totals([7]) == {7: 5}


async def test_a_process_publishes_its_counts_whole_so_a_race_it_left_is_not_counted(stores):
    first, second = stores
    await first.publish(Counter({7: 3, 8: 1}))

    await first.publish(Counter({8: 2}))

    assert await second.totals([7, 8]) == {7: 0, 8: 2}
    await first.publish(Counter())
    assert await second.totals([7, 8]) == {7: 0, 8: 0}


async def test_a_process_that_stops_refreshing_leaves_no_phantom_viewers(stores):
    first, second = stores
    await first.publish(Counter({7: 3}))  # then it dies: it never refreshes or withdraws them
    await second.publish(Counter({7: 1}))

    assert await second.totals([7]) == {7: 4}
    await asyncio.sleep(0.6)  # past the counts' time to live
    await second.publish(Counter({7: 1}))
    assert await second.totals([7]) == {7: 1}


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("stop_live_tasks")
async def test_a_meetings_board_sees_each_race_watched_and_left(settings):
    settings.SIMULATION_ENABLED = False
    race = await database_sync_to_async(factories.race_create)(starter_count=3, status=Race.Status.OPEN)
    code = await database_sync_to_async(lambda: race.meeting.code)()
    board = WebsocketCommunicator(application, "/ws/live")
    assert (await board.connect())[0]
    await board.send_json_to({"type": "subscribe", "meeting_id": code})
    state = assert_valid(await board.receive_json_from(timeout=5))

    async def viewers_now() -> int:
        summary = assert_valid(await board.receive_json_from(timeout=5))
        assert (summary["type"], summary["race_id"]) == ("race_summary", race.pk)
        return summary["race"]["viewers"]

    fans = [WebsocketCommunicator(application, f"/ws/races/{race.pk}") for _ in range(2)]
    for fan in fans:
        assert (await fan.connect())[0]
    follower = WebsocketCommunicator(application, "/ws/live")
    assert (await follower.connect())[0]
    await follower.send_json_to({"type": "subscribe", "race_id": race.pk})
    watched = await viewers_now()
    await fans[0].disconnect()
    after_one_left = await viewers_now()

    assert state["races"][0]["viewers"] == 0
    assert watched == 3  # two sockets of its own and one /ws/live follower; the board is not one
    assert after_one_left == 2
    for communicator in (fans[1], follower, board):
        await communicator.disconnect()
