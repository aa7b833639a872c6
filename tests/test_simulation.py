"""The simulated race over the channel layer: the stream clients see, and its lifecycle."""

from __future__ import annotations

import asyncio
import datetime as dt
import time

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.utils import timezone

from live.supervisor import RedisCoordinator, SimulationSupervisor, simulation_supervisor
from racing.asgi import application
from races.models import OddsSnapshot, Race
from races.services import race_result_record
from tests import factories
from tests.spec import assert_valid

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("stop_live_tasks")]


@pytest.fixture
def fast(settings):
    """A 60 s market in 60 ms, heartbeats every 20 ms."""
    settings.SIMULATION_SPEEDUP = 1000
    settings.SIMULATION_HEARTBEAT_S = 0.02
    settings.SIMULATION_LEASE_S = 0.3
    settings.SIMULATION_PRESENCE_TTL_S = 0.1
    return settings


@pytest.fixture
def race() -> Race:
    return factories.race_create(starter_count=10)


async def connect(race_id: int) -> tuple[WebsocketCommunicator, dict]:
    communicator = WebsocketCommunicator(application, f"/ws/races/{race_id}")
    connected, _ = await communicator.connect()
    assert connected
    initial = assert_valid(await communicator.receive_json_from(timeout=5))
    await communicator.send_json_to({"type": "subscribe", "race_id": race_id})
    assert assert_valid(await communicator.receive_json_from(timeout=5))["type"] == "subscribed"
    return communicator, initial


async def receive_until_result(communicator: WebsocketCommunicator, timeout_s: float = 10) -> list[dict]:
    messages = []
    while not messages or messages[-1]["type"] != "result_update":
        messages.append(assert_valid(await communicator.receive_json_from(timeout=timeout_s)))
    return messages


async def eventually(predicate, timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not await predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


def snapshot_count(race_id: int) -> int:
    return OddsSnapshot.objects.filter(race_id=race_id).count()


async def test_a_race_streams_6_to_12_odds_updates_then_its_result(fast, race):
    communicator, initial = await connect(race.pk)
    horse_ids = {s["horse_id"] for s in initial["data"]["starters"]}

    messages = await receive_until_result(communicator)

    *odds_updates, result = messages
    assert 6 <= len(odds_updates) <= 12
    assert all(m["type"] == "odds_update" and m["race_id"] == race.pk for m in odds_updates)
    assert all({o["horse_id"] for o in m["odds"]} == horse_ids for m in odds_updates)
    timestamps = [m["timestamp"] for m in messages]
    assert timestamps == sorted(timestamps) and len(set(timestamps)) == len(timestamps)
    placings = [r["placing"] for r in result["results"] if r["finished"]]
    assert placings == list(range(1, len(placings) + 1))
    assert {r["horse_id"] for r in result["results"]} == horse_ids
    assert all(r["placing"] is None for r in result["results"] if not r["finished"])
    await communicator.disconnect()


async def test_the_result_and_every_odds_update_are_kept_in_the_database(fast, race):
    communicator, _ = await connect(race.pk)
    *odds_updates, result = await receive_until_result(communicator)
    await communicator.disconnect()

    stored = await database_sync_to_async(Race.objects.get)(pk=race.pk)
    placings = await database_sync_to_async(
        lambda: dict(stored.starters.values_list("horse_id", "placing"))
    )()
    snapshots = await database_sync_to_async(
        lambda: list(OddsSnapshot.objects.filter(race=race).values_list("odds", flat=True))
    )()
    assert stored.status == Race.Status.FINISHED and stored.result_declared_at is not None
    assert placings == {r["horse_id"]: r["placing"] for r in result["results"]}
    assert snapshots == [m["odds"] for m in odds_updates]


async def test_two_clients_see_the_same_stream_from_one_simulation(fast, race):
    first, _ = await connect(race.pk)
    second, _ = await connect(race.pk)

    first_stream, second_stream = await asyncio.gather(receive_until_result(first), receive_until_result(second))

    assert first_stream == second_stream
    assert len(simulation_supervisor().simulations) <= 1
    await first.disconnect()
    await second.disconnect()


async def test_a_late_joiner_gets_the_latest_odds_at_once(settings, race):
    settings.SIMULATION_SPEEDUP = 10  # an update every 0.5-1 s
    first, _ = await connect(race.pk)
    latest = assert_valid(await first.receive_json_from(timeout=3))

    late, _ = await connect(race.pk)
    at_once = assert_valid(await late.receive_json_from(timeout=0.2))

    assert at_once["type"] == "odds_update"
    assert at_once["timestamp"] >= latest["timestamp"]
    if at_once["timestamp"] == latest["timestamp"]:
        assert at_once == latest
    assert await late.receive_nothing(timeout=0.3)  # not the same update again from the group
    await first.disconnect()
    await late.disconnect()


async def test_a_finished_race_sends_its_result_and_starts_no_simulation(fast, race):
    horse_ids = await database_sync_to_async(lambda: list(race.starters.values_list("horse_id", flat=True)))()
    placings = {horse_id: number for number, horse_id in enumerate(horse_ids[:-1], start=1)}
    await database_sync_to_async(race_result_record)(
        race_id=race.pk, placings={**placings, horse_ids[-1]: None}, declared_at=timezone.now(), source="feed"
    )

    communicator, initial = await connect(race.pk)
    result = assert_valid(await communicator.receive_json_from())

    assert [s["placing"] for s in initial["data"]["starters"]] == [*range(1, 10), None]
    assert initial["data"]["starters"][-1]["did_not_finish"] is True
    assert result["type"] == "result_update"
    assert result["results"][0] == {"horse_id": horse_ids[0], "placing": 1, "finished": True}
    assert result["results"][-1] == {"horse_id": horse_ids[-1], "placing": None, "finished": False}
    assert await communicator.receive_nothing(timeout=0.2)
    assert simulation_supervisor().simulations == {}
    assert await database_sync_to_async(snapshot_count)(race.pk) == 0
    await communicator.disconnect()


async def test_the_last_viewer_leaving_stops_the_simulation_which_resumes_where_it_was(settings, race):
    settings.SIMULATION_SPEEDUP = 20  # an update every 0.25-0.5 s
    settings.SIMULATION_HEARTBEAT_S = 0.02
    settings.SIMULATION_PRESENCE_TTL_S = 0.06
    supervisor = simulation_supervisor()
    first, _ = await connect(race.pk)
    before = [assert_valid(await first.receive_json_from(timeout=3)) for _ in range(2)]

    await first.disconnect()
    await eventually(lambda: _no_simulations(supervisor))
    stored = await database_sync_to_async(snapshot_count)(race.pk)
    await asyncio.sleep(0.6)
    assert await database_sync_to_async(snapshot_count)(race.pk) == stored  # really stopped

    again, _ = await connect(race.pk)
    resumed = await receive_until_result(again)

    assert resumed[0] == before[-1]  # the market as it was, at once
    odds_updates = before + [m for m in resumed[1:] if m["type"] == "odds_update"]
    assert 6 <= len(odds_updates) <= 12  # one 60 s market, not a new one
    await again.disconnect()


async def _no_simulations(supervisor: SimulationSupervisor) -> bool:
    return not supervisor.simulations


async def test_two_clients_share_one_simulation_until_the_last_leaves(settings, race):
    settings.SIMULATION_SPEEDUP = 5
    settings.SIMULATION_HEARTBEAT_S = 0.02
    settings.SIMULATION_PRESENCE_TTL_S = 0.06
    supervisor = simulation_supervisor()
    first, _ = await connect(race.pk)
    second, _ = await connect(race.pk)
    await eventually(lambda: _simulating(supervisor, race.pk))

    await first.disconnect()
    await asyncio.sleep(0.1)
    assert race.pk in supervisor.simulations
    await second.disconnect()

    await eventually(lambda: _no_simulations(supervisor), timeout_s=1)


async def _simulating(supervisor: SimulationSupervisor, race_id: int) -> bool:
    return race_id in supervisor.simulations


# --- Several processes over Redis, each played by a supervisor with its own coordinator -----


def redis_supervisor(settings) -> SimulationSupervisor:
    coordinator = RedisCoordinator(
        redis_url=settings.REDIS_URL,
        prefix=settings.CHANNEL_LAYER_PREFIX,
        lease_s=settings.SIMULATION_LEASE_S,
        presence_ttl_s=settings.SIMULATION_PRESENCE_TTL_S,
    )
    return SimulationSupervisor(
        coordinator=coordinator,
        heartbeat_s=settings.SIMULATION_HEARTBEAT_S,
        stop_after_s=settings.SIMULATION_PRESENCE_TTL_S,
    )


@pytest.fixture
def processes(settings, redis_url):
    settings.SIMULATION_SPEEDUP = 20
    settings.SIMULATION_HEARTBEAT_S = 0.05
    settings.SIMULATION_LEASE_S = 0.5
    settings.SIMULATION_PRESENCE_TTL_S = 0.15
    return [redis_supervisor(settings) for _ in range(3)]


async def shutdown(*supervisors: SimulationSupervisor) -> None:
    for supervisor in supervisors:
        await supervisor.shutdown()


async def test_viewers_in_three_processes_get_exactly_one_simulation(processes, race):
    for supervisor in processes:
        supervisor.viewer_joined(race.pk)
    try:
        await asyncio.sleep(0.5)

        assert sum(race.pk in s.simulations for s in processes) == 1
    finally:
        await shutdown(*processes)


async def test_the_simulation_stops_soon_after_the_last_viewer_anywhere_leaves(processes, race):
    holder, other, _ = processes
    holder.viewer_joined(race.pk)
    await eventually(lambda: _simulating(holder, race.pk))
    other.viewer_joined(race.pk)
    await eventually(lambda: _watching(other, race.pk))
    try:
        holder.viewer_left(race.pk)
        await asyncio.sleep(0.4)
        assert race.pk in holder.simulations  # a viewer elsewhere still watches

        other.viewer_left(race.pk)
        await eventually(lambda: _no_simulations(holder), timeout_s=1)
    finally:
        await shutdown(*processes)


async def test_a_crashed_process_is_taken_over_and_the_market_goes_on(processes, race):
    crashed, survivor, _ = processes
    crashed.viewer_joined(race.pk)
    await eventually(lambda: _simulating(crashed, race.pk))
    survivor.viewer_joined(race.pk)
    await eventually(lambda: _has_snapshots(race.pk, 2))

    # A crash: everything stops at once, nothing is released or cleaned up.
    crashed._closing = True
    crashed._loop_task.cancel()
    for task in crashed.simulations.values():
        task.cancel()
    crashed_at = time.monotonic()
    try:
        await eventually(lambda: _simulating(survivor, race.pk), timeout_s=2)
        taken_over_s = time.monotonic() - crashed_at
        await eventually(lambda: _finished(race.pk), timeout_s=10)

        assert taken_over_s < 0.5 + 1.0  # the lease, and a heartbeat or so
        assert 6 <= await database_sync_to_async(snapshot_count)(race.pk) <= 12  # one market
    finally:
        await shutdown(survivor, processes[2])
        await crashed.coordinator.close()


async def _watching(supervisor: SimulationSupervisor, race_id: int) -> bool:
    return race_id in supervisor._presence


async def _has_snapshots(race_id: int, count: int) -> bool:
    return await database_sync_to_async(snapshot_count)(race_id) >= count


async def _finished(race_id: int) -> bool:
    status = await database_sync_to_async(lambda: Race.objects.get(pk=race_id).status)()
    return status == Race.Status.FINISHED


async def test_a_redis_outage_during_a_heartbeat_is_logged_and_survived(processes, race, caplog):
    supervisor = processes[0]
    real_publish = supervisor.coordinator.publish_presence
    failures = []

    async def flaky_publish(**kwargs):
        if len(failures) < 2:
            failures.append(dt.datetime.now())
            raise ConnectionError("Redis restarting")
        await real_publish(**kwargs)

    supervisor.coordinator.publish_presence = flaky_publish
    supervisor.viewer_joined(race.pk)
    try:
        await eventually(lambda: _simulating(supervisor, race.pk), timeout_s=2)
        assert "Simulation heartbeat failed" in caplog.text
    finally:
        await shutdown(*processes)

