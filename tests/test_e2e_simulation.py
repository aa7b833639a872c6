"""Simulated race days end to end: real Daphne processes, real clients, Redis between processes."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time

import pytest
import redis

from tests.conftest import require_service
from tests.race_day import RaceDayWatch
from tests.servers import REPO_DIR, server_environment, start_daphne
from tests.spec import assert_valid
from tests.wsclient import next_message, race_socket

pytestmark = pytest.mark.e2e

# Fixture races (fixtures/race_day.json) given to one test each, so tests sharing the database
# never watch the same race. Race 1 belongs to tests/test_e2e_daphne.py.
RACE_STREAM, RACE_TWO_CLIENTS, RACE_LATE_JOINER, RACE_TWO_PROCESSES, RACE_CRASH, RACE_COMMAND = 2, 3, 4, 5, 6, 7


@pytest.fixture(scope="module")
def fast_server(server_database, tmp_path_factory):
    """A Daphne whose races run their 60 s market in 0.6 s."""
    server = start_daphne(server_database, log_dir=tmp_path_factory.mktemp("fast"), SIMULATION_SPEEDUP="100")
    yield server
    server.stop()


@pytest.fixture
def server_pair(server_database, tmp_path_factory, redis_url):
    """Two Daphne processes sharing the database and Redis, with a short lease."""
    environment = {"SIMULATION_SPEEDUP": "15", "SIMULATION_HEARTBEAT_S": "0.2", "SIMULATION_LEASE_S": "1"}
    servers = [start_daphne(server_database, log_dir=tmp_path_factory.mktemp("pair"), **environment) for _ in range(2)]
    yield servers
    for server in servers:
        server.stop()


def day_over(updates: list[dict]) -> bool:
    last = updates[-1] if updates else {}
    return last.get("type") == "result_update" or (last.get("type") == "race_status" and last["status"] == "abandoned")


async def updates_until_over(ws, *, timeout_s: float = 30) -> list[dict]:
    """Every update (each validated) up to and including the official result, or the abandonment."""
    updates: list[dict] = []
    while not day_over(updates):
        updates.append(assert_valid(json.loads(await asyncio.wait_for(ws.recv(), timeout_s))))
    return updates


async def stream_of(url: str, *, timeout_s: float = 30) -> tuple[dict, list[dict]]:
    """Connect, and return initial_state and every update until the race's day is over."""
    async with race_socket(url) as (ws, initial, _):
        return initial, await updates_until_over(ws, timeout_s=timeout_s)


def assert_one_race_day(initial: dict, updates: list[dict]) -> RaceDayWatch:
    """Assert that ``updates`` are one simulated race day, each following from the last, from the
    race as ``initial`` shows it to its official result; return what was seen."""
    watch = RaceDayWatch.from_initial_state(initial).see_all(updates)
    assert watch.problems == [], watch.problems
    assert 6 <= watch.odds_updates <= 12, [u["timestamp"] for u in updates if u["type"] == "odds_update"]
    assert [u["seq"] for u in updates] == list(range(updates[0]["seq"], updates[0]["seq"] + len(updates)))
    assert updates[-1]["type"] == "result_update" and watch.official is not None
    return watch


async def test_a_race_lives_its_day_to_its_official_result_which_is_stored(fast_server):
    url = fast_server.ws_url(f"/ws/races/{RACE_STREAM}")
    initial, updates = await stream_of(url)

    assert_one_race_day(initial, updates)
    # Stored: a new client is told the final odds and the result straight away, with placings in
    # its initial_state.
    async with race_socket(url) as (ws, again, _):
        final_odds, result = await next_message(ws, 5), await next_message(ws, 5)
    # A horse the day scratched is on the card (scratched, no placing) but not in the result.
    placings = {s["horse_id"]: s["placing"] for s in again["data"]["starters"] if not s["scratched"]}
    assert final_odds == [u for u in updates if u["type"] == "odds_update"][-1]
    assert result == updates[-1]
    assert placings == {r["horse_id"]: r["placing"] for r in result["results"]}
    assert all(s["placing"] is None for s in again["data"]["starters"] if s["scratched"])


def test_the_specs_python_example_without_its_subscribe_gets_the_whole_race(fast_server):
    # The spec: "Clients connect to a race room and receive real-time state, odds updates, and
    # result notifications". A client that connects and only listens gets all of it.
    from tests.spec import spec_example

    race_id = fast_server.database.race_of_its_own(copy_of=RACE_STREAM)
    example = spec_example("python").replace("localhost:8000", f"localhost:{fast_server.port}")
    example = example.replace("12345", str(race_id))
    send_line = f'        await ws.send(json.dumps({{"type": "subscribe", "race_id": {race_id}}}))\n'
    assert send_line in example
    listener = example.replace(send_line, "")

    process = subprocess.Popen(
        [sys.executable, "-u", "-c", listener], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    kinds = []
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and "result_update" not in kinds:
            line = process.stdout.readline()
            if not line:
                break
            kinds.append(line.split("]", 1)[0].lstrip("["))
    finally:
        process.kill()
        process.communicate(timeout=10)

    assert kinds[0] == "initial_state"
    assert kinds[-1] == "result_update", kinds
    assert 6 <= kinds.count("odds_update") <= 12 and kinds.count("interim_result") >= 1
    assert set(kinds) <= {
        "initial_state",
        "starter_update",
        "race_status",
        "odds_update",
        "interim_result",
        "result_update",
    }


async def test_two_clients_see_the_same_stream(fast_server):
    url = fast_server.ws_url(f"/ws/races/{RACE_TWO_CLIENTS}")

    (first_initial, first), (_, second) = await asyncio.gather(stream_of(url), stream_of(url))

    assert_one_race_day(first_initial, first)
    assert first == second


async def test_a_late_joiner_gets_the_latest_odds_at_once(paced_server):
    url = paced_server.ws_url(f"/ws/races/{RACE_LATE_JOINER}")
    async with race_socket(url) as (first, _, _):
        latest = await next_message(first, 5)
        while latest["type"] != "odds_update":  # scratchings and the opening come first
            latest = await next_message(first, 5)
        async with race_socket(url) as (late, _, _):
            at_once = await next_message(late, 0.3)  # odds come every 0.5-1 s

    assert at_once["type"] == "odds_update"
    assert at_once["timestamp"] >= latest["timestamp"]


def _holder_pid(race_id: int) -> int:
    from django.conf import settings

    client = redis.Redis.from_url(settings.REDIS_URL)
    try:
        holder = client.get(f"{settings.CHANNEL_LAYER_PREFIX}:simulation:lease:{race_id}")
    finally:
        client.close()
    assert holder, "nobody holds the race's lease"
    return int(holder.decode().split(":")[1])


async def test_two_processes_with_clients_on_both_run_one_simulation(server_pair):
    streams = await asyncio.gather(
        *(stream_of(server.ws_url(f"/ws/races/{RACE_TWO_PROCESSES}")) for server in server_pair)
    )

    (initial, first), (_, second) = streams
    watch = assert_one_race_day(initial, first)
    assert first == second
    stored = server_pair[0].database.scalar(
        "SELECT COUNT(*) FROM races_oddssnapshot WHERE race_id = ?", RACE_TWO_PROCESSES
    )
    assert stored == watch.odds_updates  # one market was run and stored, not two


async def test_killing_the_process_that_runs_a_race_hands_it_to_the_other(server_pair):
    first, second = server_pair
    async with (
        race_socket(first.ws_url(f"/ws/races/{RACE_CRASH}")) as (first_ws, initial, _),
        race_socket(second.ws_url(f"/ws/races/{RACE_CRASH}")) as (second_ws, _, _),
    ):
        opening = [json.loads(await asyncio.wait_for(ws.recv(), 10)) for ws in (first_ws, second_ws)]
        assert opening[0] == opening[1]
        holder_pid = _holder_pid(RACE_CRASH)
        holder, survivor_ws = (first, second_ws) if holder_pid == first.process.pid else (second, first_ws)

        os.kill(holder.process.pid, signal.SIGKILL)
        killed_at = time.monotonic()
        updates = [opening[0], assert_valid(json.loads(await asyncio.wait_for(survivor_ws.recv(), 15)))]
        taken_over_s = time.monotonic() - killed_at
        updates += await updates_until_over(survivor_ws, timeout_s=15)

    # Within the lease (1 s), a heartbeat or two (0.2 s each) and one odds interval (<= 0.67 s).
    assert taken_over_s < 1 + 2 * 0.2 + 0.67 + 0.5, taken_over_s
    # One race day continued, not a new one, and nothing missing: an update the killed process
    # stored but never published is sent from the race's update log before the next one.
    assert_one_race_day(initial, updates)


def test_simulate_race_reaches_a_client_of_a_running_server(daphne_server, redis_url):
    async def watch_while_the_command_runs() -> tuple[dict, list[dict], subprocess.CompletedProcess]:
        url = daphne_server.ws_url(f"/ws/races/{RACE_COMMAND}")
        async with race_socket(url) as (ws, initial, _):
            command = asyncio.create_task(
                asyncio.to_thread(
                    subprocess.run,
                    [sys.executable, "manage.py", "simulate_race", str(RACE_COMMAND), "--speedup", "30", "--seed", "3"],
                    cwd=REPO_DIR, env=server_environment(daphne_server.database),
                    capture_output=True, text=True, timeout=60,
                )
            )  # fmt: skip
            updates = await updates_until_over(ws, timeout_s=20)
            return initial, updates, await command

    initial, updates, finished = asyncio.run(watch_while_the_command_runs())

    assert finished.returncode == 0, finished.stderr
    watch = assert_one_race_day(initial, updates)
    printed_odds = [line for line in finished.stdout.splitlines() if "odds_update" in line]
    assert len(printed_odds) == watch.odds_updates


# --- What a person forces with simulate_race, watched on a real Daphne -------------------------


@pytest.fixture(scope="module")
def quiet_server(server_database, tmp_path_factory):
    """A Daphne that simulates nothing itself: what its clients see is the command's doing."""
    from django.conf import settings

    require_service(bool(settings.REDIS_URL), "REDIS_URL is not set: the command reaches the server through Redis")
    server = start_daphne(server_database, log_dir=tmp_path_factory.mktemp("quiet"), SIMULATION_ENABLED="0")
    yield server
    server.stop()


async def watch_a_forced_day(server, race_id: int, *options: str) -> tuple[dict, list[dict], str]:
    """Watch race ``race_id`` while ``simulate_race`` lives its day with ``options``; return the
    client's initial_state and updates (each validated on arrival), and what the command printed."""
    async with race_socket(server.ws_url(f"/ws/races/{race_id}")) as (ws, initial, _):
        command = asyncio.create_task(
            asyncio.to_thread(
                subprocess.run,
                [sys.executable, "manage.py", "simulate_race", str(race_id), "--speedup", "40", "--seed", "3", *options],
                cwd=REPO_DIR, env=server_environment(server.database), capture_output=True, text=True, timeout=60,
            )
        )  # fmt: skip
        updates = await updates_until_over(ws, timeout_s=20)
        finished = await command
    assert finished.returncode == 0, finished.stderr
    return initial, updates, finished.stdout


async def test_a_forced_late_scratching_dead_heat_and_protest_reach_a_client_each_in_order(quiet_server):
    database = quiet_server.database
    race_ids = [await asyncio.to_thread(database.race_of_its_own, copy_of=11) for _ in range(2)]

    (initial, updates, printed), (abandoned_initial, abandoned, _) = await asyncio.gather(
        watch_a_forced_day(quiet_server, race_ids[0], "--scratch", "late", "--dead-heat", "--protest", "upheld"),
        watch_a_forced_day(quiet_server, race_ids[1], "--scratch", "early", "--abandon"),
    )

    # Every update of the day, from the first, in order, each following from the last.
    assert [u["seq"] for u in updates] == list(range(1, len(updates) + 1))
    watch = RaceDayWatch.from_initial_state(initial).see_all(updates)
    assert watch.problems == []
    late = [horse_id for horse_id, is_late in watch.scratchings if is_late]
    assert late and watch.dead_heat and watch.protest_upheld
    scratched_at = next(
        i for i, u in enumerate(updates) if u["type"] == "starter_update" and u["change"] == "scratched"
    )
    renormalised = updates[scratched_at + 1]
    assert renormalised["type"] == "odds_update" and late[0] not in {o["horse_id"] for o in renormalised["odds"]}
    statuses = [u["status"] for u in updates if u["type"] == "race_status"]
    assert statuses[0] == "open" and statuses[-5:] == ["closed", "interim", "protest", "interim", "official"]
    assert [u["type"] for u in updates[-2:]] == ["race_status", "result_update"]
    assert len([line for line in printed.splitlines() if line[:2].isdigit()]) == len(updates)  # one printed each
    # The other race: scratched before its market, then abandoned while it ran, with no result.
    assert [u["seq"] for u in abandoned] == list(range(1, len(abandoned) + 1))
    abandoned_watch = RaceDayWatch.from_initial_state(abandoned_initial).see_all(abandoned)
    assert abandoned_watch.problems == [] and abandoned_watch.status == "abandoned"
    assert abandoned[0]["type"] == "starter_update" and abandoned_watch.scratchings[0][1] is False
    assert abandoned[-1]["type"] == "race_status" and abandoned[-1]["reason"]
    assert not [u for u in abandoned if u["type"] in ("interim_result", "result_update")]
