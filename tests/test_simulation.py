"""The simulated race over the channel layer: the stream clients see, and its lifecycle."""

from __future__ import annotations

import asyncio
import datetime as dt
import time

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.utils import timezone

from live.market.race_day import Forced
from live.market.simulation import SimulationOutcome, SimulationTiming, race_simulation_run
from live.market.supervisor import RedisCoordinator, SimulationSupervisor, simulation_supervisor
from live.protocol.messages import update_from_row
from races.models import OddsSnapshot, Race, Source
from races.selectors import race_updates_after
from races.serializers import race_card_data
from races.services import (
    Actor,
    RaceClosedError,
    odds_snapshot_record,
    race_reset,
    race_result_record,
    race_status_change,
    starter_driver_change,
    starter_scratch,
)
from racing.asgi import application
from tests import factories
from tests.race_day import RaceDayWatch
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
    return communicator, initial  # a client that only listens: the race streams from here


async def receive_until_over(communicator: WebsocketCommunicator, timeout_s: float = 10) -> list[dict]:
    """Receive (validating each) until the race's day is over: its official result, or abandoned."""
    messages = []
    while not messages or not (
        messages[-1]["type"] == "result_update"
        or (messages[-1]["type"] == "race_status" and messages[-1]["status"] == "abandoned")
    ):
        messages.append(assert_valid(await communicator.receive_json_from(timeout=timeout_s)))
    return messages


async def receive_until(communicator: WebsocketCommunicator, kind: str, timeout_s: float = 5) -> list[dict]:
    messages = [assert_valid(await communicator.receive_json_from(timeout=timeout_s))]
    while messages[-1]["type"] != kind:
        messages.append(assert_valid(await communicator.receive_json_from(timeout=timeout_s)))
    return messages


async def eventually(predicate, timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not await predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


def snapshot_count(race_id: int) -> int:
    return OddsSnapshot.objects.filter(race_id=race_id).count()


def odds_of(messages: list[dict]) -> list[dict]:
    return [m for m in messages if m["type"] == "odds_update"]


async def test_a_race_lives_its_day_from_the_market_opening_to_its_official_result(fast, race):
    communicator, initial = await connect(race.pk)

    messages = await receive_until_over(communicator)

    watch = RaceDayWatch.from_initial_state(initial).see_all(messages)
    assert watch.problems == []
    assert [m["seq"] for m in messages] == list(range(1, len(messages) + 1))
    assert 6 <= watch.odds_updates <= 12
    statuses = [m["status"] for m in messages if m["type"] == "race_status"]
    assert statuses[:2] == ["open", "closed"] and statuses[-1] == "official"
    assert [m["type"] for m in messages].count("interim_result") in (1, 2)  # 2: a protest upheld
    assert messages[-1]["type"] == "result_update" and all(m["race_id"] == race.pk for m in messages)
    await communicator.disconnect()


async def test_the_result_and_every_odds_update_are_kept_in_the_database(fast, race):
    communicator, _ = await connect(race.pk)
    messages = await receive_until_over(communicator)
    await communicator.disconnect()

    stored = await database_sync_to_async(Race.objects.get)(pk=race.pk)
    placings = await database_sync_to_async(
        lambda: dict(stored.starters.filter(scratched=False).values_list("horse_id", "placing"))
    )()
    snapshots = await database_sync_to_async(
        lambda: list(OddsSnapshot.objects.filter(race=race).values_list("odds", flat=True))
    )()
    assert stored.status == Race.Status.OFFICIAL and stored.result_declared_at is not None
    assert placings == {r["horse_id"]: r["placing"] for r in messages[-1]["results"]}
    assert snapshots == [m["odds"] for m in odds_of(messages)]


async def test_two_clients_see_the_same_stream_from_one_simulation(fast, race):
    first, _ = await connect(race.pk)
    second, _ = await connect(race.pk)

    first_stream, second_stream = await asyncio.gather(receive_until_over(first), receive_until_over(second))

    assert first_stream == second_stream
    assert len(simulation_supervisor().simulations) <= 1
    await first.disconnect()
    await second.disconnect()


async def test_a_late_joiner_gets_the_latest_odds_at_once(settings, race):
    settings.SIMULATION_SPEEDUP = 10  # an update every 0.5-1 s
    first, _ = await connect(race.pk)
    latest = (await receive_until(first, "odds_update", timeout_s=3))[-1]

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
    first, initial = await connect(race.pk)
    before = await receive_until(first, "odds_update", timeout_s=3)
    before += await receive_until(first, "odds_update", timeout_s=3)

    await first.disconnect()
    await eventually(lambda: _no_simulations(supervisor))
    stored = await database_sync_to_async(snapshot_count)(race.pk)
    await asyncio.sleep(0.6)
    assert await database_sync_to_async(snapshot_count)(race.pk) == stored  # really stopped

    again, _ = await connect(race.pk)
    resumed = await receive_until_over(again)

    assert resumed[0] == odds_of(before)[-1]  # the market as it was, at once
    later = [m for m in resumed if m["seq"] > before[-1]["seq"]]
    watch = RaceDayWatch.from_initial_state(initial).see_all(before + later)
    assert watch.problems == []
    assert 6 <= watch.odds_updates <= 12  # one 60 s market, not a new one
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
        await eventually(lambda: _finished(race.pk), timeout_s=15)

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
    return status == Race.Status.OFFICIAL


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


# --- A race's day run directly (live.market.simulation), stopped and resumed, fought over -------

DAY_IN_A_BLINK = SimulationTiming(odds_interval_s=(5.0, 10.0), market_duration_s=60.0, speedup=100_000)
EVERYTHING = Forced(scratching="late", dead_heat=True, protest="upheld")


def race_log(race_id: int) -> list[dict]:
    """The race's numbered updates as clients are sent them, from the first."""
    return [
        update_from_row(race_id=race_id, row=row).as_dict()
        for row in race_updates_after(race_id=race_id, after_seq=0, limit=1000)
    ]


def card(race_id: int) -> dict:
    from races.selectors import race_card_get

    return {"data": race_card_data(race_card_get(race_id=race_id))}


def stopping_after(writes: int):
    """A still_leading that says the lead was lost before write number ``writes + 1``."""

    async def still_leading() -> bool:
        still_leading.calls += 1
        return still_leading.calls <= writes

    still_leading.calls = 0
    return still_leading


async def run_day(race_id: int, **options) -> SimulationOutcome:
    return await race_simulation_run(race_id=race_id, timing=DAY_IN_A_BLINK, seed=5, **options)


async def test_a_forced_day_has_a_late_scratching_a_dead_heat_and_an_upheld_protest(race):
    updates: list = []

    outcome = await run_day(race.pk, forced=EVERYTHING, on_update=updates.append)

    log = await database_sync_to_async(race_log)(race.pk)
    watch = RaceDayWatch.from_the_start(await database_sync_to_async(card)(race.pk)).see_all(log)
    assert outcome is SimulationOutcome.FINISHED and watch.problems == []
    assert any(late for _, late in watch.scratchings)
    assert watch.dead_heat and watch.protest_upheld
    assert [m["status"] for m in log if m["type"] == "race_status"][-4:] == [
        "interim",
        "protest",
        "interim",
        "official",
    ]
    assert [type(u).__name__ for u in updates].count("OddsStored") == watch.odds_updates


async def test_a_day_stopped_after_any_write_resumes_without_redoing_or_contradicting_it(race):
    # Stopped before each of its writes in turn, then resumed (the same epoch, so the same plan):
    # the race's log is one valid day, each change made once, and the resumed part goes on from
    # what was stored.
    counting = stopping_after(1000)
    await run_day(race.pk, forced=EVERYTHING, still_leading=counting)
    for writes in range(counting.calls):
        await database_sync_to_async(race_reset)(race_id=race.pk)
        first = await run_day(race.pk, forced=EVERYTHING, still_leading=stopping_after(writes))
        stored = await database_sync_to_async(race_log)(race.pk)
        second = await run_day(race.pk, forced=EVERYTHING)

        log = await database_sync_to_async(race_log)(race.pk)
        watch = RaceDayWatch.from_the_start(await database_sync_to_async(card)(race.pk)).see_all(log)
        assert first is SimulationOutcome.LOST_LEAD and second is SimulationOutcome.FINISHED
        assert log[: len(stored)] == stored
        assert watch.problems == [], (writes, watch.problems)
        assert len(watch.scratchings) == len({horse for horse, _ in watch.scratchings}) >= 1
        assert len(watch.protests) == 1 and watch.dead_heat, writes
        interims = [m["results"] for m in stored if m["type"] == "interim_result"]
        if interims:  # placings once called are the ones protested, upheld and declared
            assert watch.interims[0] == interims[0]


async def test_two_simulations_of_one_race_at_once_still_make_one_day_without_contradiction(race):
    # What a lease lost mid-write can leave for a moment: each write of one finds the race moved on
    # by the other, reads it again and carries on from what is stored; nothing is made twice.
    outcomes = await asyncio.gather(run_day(race.pk, forced=EVERYTHING), run_day(race.pk, forced=EVERYTHING))

    log = await database_sync_to_async(race_log)(race.pk)
    watch = RaceDayWatch.from_the_start(await database_sync_to_async(card)(race.pk)).see_all(log)
    assert set(outcomes) <= {SimulationOutcome.FINISHED, SimulationOutcome.NOTHING_TO_RUN}
    assert SimulationOutcome.FINISHED in outcomes
    assert watch.problems == [] and watch.official is not None
    assert len(watch.scratchings) == len({horse for horse, _ in watch.scratchings})
    assert len(watch.protests) == 1 and len(watch.interims) == 2  # called, then amended once
    assert [m["type"] for m in log].count("result_update") == 1


async def test_a_race_another_simulation_moved_on_is_carried_on_from_there_not_given_up(race):
    # A process that lost the race's lease (Redis restarted, say) may land one last write after
    # the new holder read the race: here it closes the market under this run's feet. This run's
    # next write finds the race moved on, and the day goes on from the close to its result.
    def twin_closes(update) -> None:
        if type(update).__name__ == "OddsStored" and not closed:
            closed.append(True)
            race_status_change(race_id=race.pk, status="closed", at=timezone.now(), actor=Actor(Source.SIMULATION))

    closed: list = []
    outcome = await run_day(race.pk, on_update=lambda update: async_to_sync_call(twin_closes, update))

    log = await database_sync_to_async(race_log)(race.pk)
    watch = RaceDayWatch.from_the_start(await database_sync_to_async(card)(race.pk)).see_all(log)
    assert outcome is SimulationOutcome.FINISHED and watch.problems == []
    assert watch.odds_updates == 1 and watch.official is not None


async def test_a_forced_abandonment_ends_the_day_with_no_result(race):
    outcome = await run_day(race.pk, forced=Forced(abandon=True))

    log = await database_sync_to_async(race_log)(race.pk)
    stored = await database_sync_to_async(Race.objects.get)(pk=race.pk)
    assert outcome is SimulationOutcome.FINISHED and stored.status == Race.Status.ABANDONED
    assert log[-1]["type"] == "race_status" and log[-1]["status"] == "abandoned" and log[-1]["reason"]
    assert not [m for m in log if m["type"] in ("interim_result", "result_update")]
    assert await run_day(race.pk) is SimulationOutcome.NOTHING_TO_RUN


async def test_a_live_feed_that_takes_the_race_over_stops_the_simulation_at_its_next_write(race):
    horse_ids = await database_sync_to_async(lambda: list(race.starters.values_list("horse_id", flat=True)))()

    def feed_takes_over(update) -> None:
        if type(update).__name__ == "OddsStored" and not feed_took_over:
            feed_took_over.append(True)
            odds_snapshot_record(
                race_id=race.pk, odds=[(h, 5.0) for h in horse_ids], source="feed", taken_at=timezone.now()
            )

    feed_took_over: list = []
    outcome = await race_simulation_run(
        race_id=race.pk,
        timing=DAY_IN_A_BLINK,
        seed=5,
        forced=EVERYTHING,
        on_update=lambda update: async_to_sync_call(feed_takes_over, update),
    )

    log = await database_sync_to_async(race_log)(race.pk)
    assert outcome is SimulationOutcome.NOTHING_TO_RUN
    assert log[-1]["type"] == "odds_update" and {o["odds"] for o in log[-1]["odds"]} == {5.0}
    assert await run_day(race.pk) is SimulationOutcome.NOTHING_TO_RUN  # never simulated again


async def test_a_horse_the_race_office_scratches_mid_market_leaves_the_simulated_odds(race):
    horse_ids = await database_sync_to_async(lambda: list(race.starters.values_list("horse_id", flat=True)))()
    office = Actor(Source.ADMIN)
    scratched: list[int] = []

    def office_scratches(update) -> None:
        if type(update).__name__ == "OddsStored" and not scratched:
            horse_id = next(h for h, _ in update.odds)
            starter_scratch(race_id=race.pk, horse_id=horse_id, at=timezone.now(), actor=office)
            scratched.append(horse_id)

    outcome = await race_simulation_run(
        race_id=race.pk,
        timing=DAY_IN_A_BLINK,
        seed=5,
        on_update=lambda update: async_to_sync_call(office_scratches, update),
    )

    log = await database_sync_to_async(race_log)(race.pk)
    watch = RaceDayWatch.from_the_start(await database_sync_to_async(card)(race.pk)).see_all(log)
    assert outcome is SimulationOutcome.FINISHED and watch.problems == []
    assert scratched and (scratched[0], True) in watch.scratchings and len(horse_ids) == 10


def async_to_sync_call(function, update) -> None:
    """Run a synchronous write from the simulation's on_update (which runs on the event loop)."""
    import threading

    thread = threading.Thread(target=_closing_connections, args=(function, update))
    thread.start()
    thread.join()


def _closing_connections(function, update) -> None:
    from django.db import connections

    try:
        function(update)
    finally:
        connections.close_all()


# --- What the services refuse the simulation, and what a reset gives back ----------------------


@pytest.mark.parametrize(
    "write",
    [
        lambda race_id, horse_id: race_status_change(
            race_id=race_id, status="closed", at=timezone.now(), actor=Actor(Source.SIMULATION)
        ),
        lambda race_id, horse_id: starter_scratch(
            race_id=race_id, horse_id=horse_id, at=timezone.now(), actor=Actor(Source.SIMULATION)
        ),
        lambda race_id, horse_id: starter_driver_change(
            race_id=race_id,
            horse_id=horse_id,
            driver_name="Sam Ferris",
            at=timezone.now(),
            actor=Actor(Source.SIMULATION),
        ),
        lambda race_id, horse_id: odds_snapshot_record(
            race_id=race_id, odds=[(horse_id, 3.0)], source=Source.SIMULATION, taken_at=timezone.now()
        ),
    ],
    ids=["status", "scratching", "driver change", "odds"],
)
async def test_no_simulated_write_reaches_a_race_a_live_feed_has_taken(race, write):
    def feed_then_simulation() -> None:
        horse_ids = list(race.starters.values_list("horse_id", flat=True))
        odds_snapshot_record(
            race_id=race.pk, odds=[(h, 4.0) for h in horse_ids], source="feed", taken_at=timezone.now()
        )
        seq = Race.objects.get(pk=race.pk).update_seq
        with pytest.raises(RaceClosedError, match="fed by a live feed"):
            write(race.pk, horse_ids[0])
        assert Race.objects.get(pk=race.pk).update_seq == seq

    await database_sync_to_async(feed_then_simulation)()


async def test_a_reset_gives_back_the_drivers_the_simulation_replaced_but_not_the_race_offices(race):
    def change_reset_and_read() -> tuple[dict, dict]:
        starters = list(race.starters.order_by("runner_number"))
        drawn = {s.horse_id: s.driver_id for s in starters}
        first, second = starters[0].horse_id, starters[1].horse_id
        for horse_id, source in ((first, Source.SIMULATION), (second, Source.SIMULATION), (second, Source.ADMIN)):
            starter_driver_change(
                race_id=race.pk, horse_id=horse_id, driver_name=f"Relief {source} {horse_id}", at=timezone.now(),
                actor=Actor(source),
            )  # fmt: skip
        after_changes = dict(race.starters.values_list("horse_id", "driver_id"))
        race_reset(race_id=race.pk)
        return drawn, after_changes

    drawn, after_changes = await database_sync_to_async(change_reset_and_read)()

    now = await database_sync_to_async(lambda: dict(race.starters.values_list("horse_id", "driver_id")))()
    first, second = list(drawn)[:2]
    assert now[first] == drawn[first]  # the simulation's change undone
    assert now[second] == after_changes[second] != drawn[second]  # the race office's stands
    assert {h: d for h, d in now.items() if h not in (first, second)} == {
        h: d for h, d in drawn.items() if h not in (first, second)
    }
