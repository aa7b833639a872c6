"""
The meeting scenario of the benchmark: every client on ``/ws/live`` subscribed to one meeting of
ten races (``{"type": "subscribe", "meeting_id": ...}``), every race's market moving, and the
check of what the protocol promises of race summaries (docs/protocol.md): at most one a second
per race, the latest state winning, a status change or a result never held back.

Each update the feed posts is one step of its race's state, and a race's summary says which: the
favourite's price carries the number of odds updates (1.50 + k/100, every other runner at 2.00
or more), the start time the number of delays, the status the close and the result. So a
client turns each ``race_summary`` into the race's *version* (how many of the race's updates it
reflects), and the analysis below, pure, needs only the publications' times and the clients'
receipts. docs/performance.md says what is measured and why.
"""

from __future__ import annotations

import asyncio
import bisect
import datetime as dt
import json
import random
import time
from collections import Counter, defaultdict
from dataclasses import dataclass

import websockets

from bench.clients import CONNECT_CONCURRENCY, percentile, raise_file_limit
from bench.servers import BenchDatabase, Feed, odds_for

MEETING_ID = "NZ_20261205_AUK"  # fixture: Alexandra Park, 10 races (ids 10 to 19)
# The favourite's price says how many odds updates the summary reflects; the rest of the field
# (bench.servers.odds_for) is priced at 2.00 or more, so it stays the favourite.
FAVOURITE_BASE = 1.50
MAX_ODDS_UPDATES = 49  # 1.99
DELAY = dt.timedelta(minutes=2)  # each delay puts the start back this much
STAGES = {"open": 0, "closed": 1, "official": 2}

# A busy market: each race's odds move every 0.3 to 3 s (every 1.65 s on average, six updates a
# second across the meeting, where the simulator moves a race every 5-10 s), a quarter of them
# within a second of the last, to be coalesced. Clients then receive about as many messages a
# second as in the single-race scenario (2,000 clients, 5 updates a second), which makes the two
# comparable. Two delays per race while its market is open, then, staggered over the last fifth
# of the run, each race closes and its result goes official.
ODDS_GAP_S = (0.3, 3.0)
DELAYS_PER_RACE = 2
CLOSE_AT = (0.75, 0.9)  # of the run
RESULT_AFTER_S = (0.5, 1.5)

# The one-second rule, as checked (docs/performance.md, "The meeting scenario"):
SUMMARY_INTERVAL_S = 1.0  # live/protocol/summaries.py: a race's summary at most this often
# The time allowed to deliver a summary once the rule lets it go (about twice the single-race
# scenario's p99 at 2,000 clients on this machine); so also how much later one summary may
# arrive, after the server's decision to send it, than another.
DELIVERY_ALLOWANCE_S = 0.5
# Clients keep reading this long after the last update: its summary may wait a second.
SETTLE_S = SUMMARY_INTERVAL_S + 2.0
PERCENTILES = {"p50": 0.5, "p99": 0.99, "max": 1.0}


# --- The feed's plan and the races' versions ------------------------------------------------


@dataclass(frozen=True)
class Step:
    at_s: float  # from the start of publishing
    race_id: int
    kind: str  # "odds", "delay", "close", "result"
    number: int  # odds: the update's number k; delay: the delay's number


@dataclass(frozen=True)
class Publication:
    race_id: int
    version: int  # the race's updates so far, this one included
    at: float  # the server's timestamp of the update (seconds since the epoch)
    urgent: bool  # a status change or a result: never held back


def meeting_plan(race_ids: list[int], *, duration_s: float, seed: int = 14) -> list[Step]:
    """Return the feed's updates for the run, in time order: for each race, odds every
    ODDS_GAP_S and two delays until it closes, then its official result."""
    rng = random.Random(seed)
    steps = []
    for race_id in race_ids:
        close_at = rng.uniform(*CLOSE_AT) * duration_s
        at, k = rng.uniform(0, ODDS_GAP_S[1]), 0
        while at < close_at and k < MAX_ODDS_UPDATES:
            k += 1
            steps.append(Step(at, race_id, "odds", k))
            at += rng.uniform(*ODDS_GAP_S)
        for number, delay_at in enumerate(sorted(rng.uniform(0.1, 0.7) * close_at for _ in range(DELAYS_PER_RACE))):
            steps.append(Step(delay_at, race_id, "delay", number + 1))
        steps.append(Step(close_at, race_id, "close", 0))
        steps.append(Step(close_at + rng.uniform(*RESULT_AFTER_S), race_id, "result", 0))
    return sorted(steps, key=lambda step: step.at_s)


def meeting_odds(horse_ids: list[int], k: int) -> list[dict]:
    """Return the race's market after ``k`` odds updates: a favourite priced 1.50 + k/100 (another
    runner every five updates), the rest as the single-race scenario prices them."""
    assert k <= MAX_ODDS_UPDATES
    odds = odds_for(horse_ids, k)
    odds[(k // 5) % len(odds)]["odds"] = round(FAVOURITE_BASE + k / 100, 2)
    return odds


def summary_version(race: dict, *, scheduled_at: dt.datetime) -> int:
    """Return how many of the plan's updates a race's summary reflects (``scheduled_at``: the
    race's start before the run's delays, as meeting_state gave it)."""
    favourite = race["favourite"]
    odds_updates = round((favourite["odds"] - FAVOURITE_BASE) * 100) if favourite else 0
    delays = round((dt.datetime.fromisoformat(race["race_datetime"]) - scheduled_at) / DELAY)
    return odds_updates + delays + STAGES[race["status"]]


def _timestamp(text: str) -> float:
    return dt.datetime.fromisoformat(text).timestamp()


class MeetingFeed:
    """Posts the plan's updates through the feed API and keeps when the server stamped each."""

    def __init__(self, feed: Feed, races: dict[int, tuple[dt.datetime, list[int]]]) -> None:
        self.feed = feed
        self.starts = {race_id: start for race_id, (start, _) in races.items()}
        self.runners = {race_id: horse_ids for race_id, (_, horse_ids) in races.items()}  # in runner order
        self.versions: Counter[int] = Counter()
        self.publications: list[Publication] = []

    def open_markets(self) -> None:
        """Open every race's market (k = 0) before any client connects."""
        for race_id, horse_ids in self.runners.items():
            self.feed.post(f"/api/races/{race_id}/odds/", meeting_odds(horse_ids, 0))

    def publish(self, step: Step) -> None:
        race_id, horse_ids = step.race_id, self.runners[step.race_id]
        if step.kind == "odds":
            answer = self.feed.post(f"/api/races/{race_id}/odds/", meeting_odds(horse_ids, step.number))
            at = _timestamp(answer["timestamp"])
        elif step.kind in ("delay", "close"):
            body = {"status": "closed", "reason": "bench"}
            if step.kind == "delay":
                start = self.starts[race_id] + step.number * DELAY
                body = {"status": "open", "race_datetime": start.isoformat(), "reason": "bench: put back"}
            answer = self.feed.post(f"/api/races/{race_id}/status/", body)
            at = _timestamp(answer["changes"][-1]["changed_at"])
        else:
            placings = [{"horse_id": h, "placing": i + 1, "finished": True} for i, h in enumerate(horse_ids)]
            answer = self.feed.post(f"/api/races/{race_id}/results/", {"results": placings, "official": True})
            at = _timestamp(answer["timestamp"])
        self.versions[race_id] += 1
        self.publications.append(Publication(race_id, self.versions[race_id], at, urgent=step.kind != "odds"))


# --- The clients --------------------------------------------------------------------------------


async def _follow(urls: list[str], count: int, meeting_id: str, connected, go, finished, timeout_s: float) -> dict:
    """Open ``count`` connections, each subscribed to the meeting; record every race_summary."""
    connect_times: list[float] = []
    failures: list[str] = []
    # Per connection: race -> (versions, arrival times), in arrival order.
    receipts: list[dict[int, tuple[list[int], list[float]]]] = [{} for _ in range(count)]
    scheduled: dict[int, dt.datetime] = {}
    # Every connection here receives the same frames: each is read once (the clients share the
    # machine's two cores with the server, and should cost it as little as they can).
    summaries_read: dict[str, tuple[int, int] | None] = {}
    subscribed: set[int] = set()
    all_connected = asyncio.Event()
    sockets = []
    limit = asyncio.Semaphore(CONNECT_CONCURRENCY)

    async def one(index: int) -> None:
        try:
            async with limit:
                started = time.perf_counter()
                ws = await websockets.connect(
                    urls[index % len(urls)], max_size=None, compression=None, ping_interval=None, open_timeout=60
                )
                await ws.send(json.dumps({"type": "subscribe", "meeting_id": meeting_id}))
                while True:
                    state = json.loads(await asyncio.wait_for(ws.recv(), 120))
                    if state["type"] == "meeting_state":
                        break
                connect_times.append(time.perf_counter() - started)
                subscribed.add(index)
                for race in state["races"]:
                    scheduled.setdefault(race["id"], dt.datetime.fromisoformat(race["race_datetime"]))
            sockets.append(ws)
        except Exception as error:  # counted, not raised: a benchmark reports what failed
            failures.append(f"connect: {type(error).__name__}: {error}")
            return
        finally:
            if len(connect_times) + len(failures) == count:
                all_connected.set()
        mine = receipts[index]
        try:
            async for text in ws:
                at = time.time()
                read = summaries_read.get(text)
                if read is None:
                    read = summaries_read[text] = _read_summary(text, scheduled)
                if read is not None:
                    versions, times = mine.setdefault(read[0], ([], []))
                    versions.append(read[1])
                    times.append(at)
        except asyncio.CancelledError:
            raise
        except Exception as error:
            failures.append(f"receive: {type(error).__name__}: {error}")

    storm_started = time.perf_counter()
    tasks = [asyncio.create_task(one(i)) for i in range(count)]
    await all_connected.wait()
    storm_s = time.perf_counter() - storm_started
    connected.set()
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, go.wait)
    await loop.run_in_executor(None, finished.wait, timeout_s)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await asyncio.gather(*(ws.close() for ws in sockets), return_exceptions=True)
    return {
        "connect_times": connect_times,
        "storm_s": storm_s,
        "receipts": [receipts[i] for i in sorted(subscribed)],
        "failures": failures[:20],
        "failure_count": len(failures),
    }


def _read_summary(text: str, scheduled: dict[int, dt.datetime]) -> tuple[int, int] | None:
    """Return a race_summary's race and version (None for any other message)."""
    message = json.loads(text)
    if message["type"] != "race_summary":
        return None
    race_id = message["race_id"]
    return race_id, summary_version(message["race"], scheduled_at=scheduled[race_id])


def meeting_client_process(urls, count, meeting_id, connected, go, finished, timeout_s, results) -> None:
    raise_file_limit()
    results.put(asyncio.run(_follow(urls, count, meeting_id, connected, go, finished, timeout_s)))


# --- The analysis -------------------------------------------------------------------------------


def summary_rule_report(
    publications: list[Publication],
    receipts: list[dict[int, tuple[list[int], list[float]]]],
    *,
    interval_s: float = SUMMARY_INTERVAL_S,
    delivery_allowance_s: float = DELIVERY_ALLOWANCE_S,
) -> dict:
    """
    Check the clients' race summaries against the one-second rule, and time them.

    ``receipts`` has, per client, each race's summaries in arrival order as (versions, arrival
    times); every client subscribed before the first publication. For each publication and each
    client, the first summary reflecting it (or a later update: it was superseded) is its
    delivery. The rule lets an update go at once if it is urgent (a status change, a result) or
    if its race's previous summary went out a second or more before; otherwise when that second
    ends, and never more than a second after its publication. The server's sends are not seen
    here: a summary's send is taken as its first arrival at any client (which trails it by the
    server's read and the writes before it: the wait is over-estimated, the latency of updates
    that waited under-estimated by that much). Counted as violations:

    - ``lost``: a client never had a summary reflecting the publication;
    - ``late``: it had it more than ``delivery_allowance_s`` after the rule let it go;
    - ``too_soon``: a summary that carries only odds (no urgent update since the race's previous
      summary) arriving less than ``interval_s`` after the previous one, or less than twice that
      after the one before when that carried only odds too, less ``delivery_allowance_s`` each
      time: how much later one summary may be delivered than another;
    - ``out_of_order``: a summary older than one the client had already;
    - ``inconsistent``: a client whose summaries of a race are not the ones most clients had.

    Not counted, but reported: ``repeats``, a summary the same as the race's previous one (an
    urgent update whose event reached the server after its read of the previous summary had
    seen the update; the protocol sends a status change at once, and this one went out twice).
    """
    sequences: dict[int, Counter[tuple[int, ...]]] = defaultdict(Counter)
    for client in receipts:
        for race_id, (versions, _) in client.items():
            sequences[race_id][tuple(versions)] += 1
    races = sorted({p.race_id for p in publications} | set(sequences))
    reference = {race_id: sequences[race_id].most_common(1)[0][0] if sequences[race_id] else () for race_id in races}
    inconsistent = sum(
        1 for client in receipts for race_id in races if tuple(client.get(race_id, ((), ()))[0]) != reference[race_id]
    )
    first_arrival = {race_id: [float("inf")] * len(reference[race_id]) for race_id in races}
    for client in receipts:
        for race_id, (versions, times) in client.items():
            if tuple(versions) == reference[race_id]:
                arrivals = first_arrival[race_id]
                for i, at in enumerate(times):
                    arrivals[i] = min(arrivals[i], at)
    by_race: dict[int, list[Publication]] = defaultdict(list)
    for publication in publications:
        by_race[publication.race_id].append(publication)
    urgent_versions = {(p.race_id, p.version) for p in publications if p.urgent}

    latencies: dict[str, list[float]] = {"urgent": [], "odds_at_once": [], "odds_after_window": []}
    staleness: list[float] = []
    gaps: list[float] = []
    lost = late = too_soon = out_of_order = repeats = superseded = 0
    for client in receipts:
        for race_id in races:
            versions, times = client.get(race_id, ((), ()))
            odds_only_before = False
            for i in range(1, len(versions)):
                if versions[i] < versions[i - 1]:
                    out_of_order += 1
                if versions[i] <= versions[i - 1]:
                    repeats += versions[i] == versions[i - 1]
                    odds_only_before = False
                    continue
                if any((race_id, v) in urgent_versions for v in range(versions[i - 1] + 1, versions[i] + 1)):
                    odds_only_before = False
                    continue
                gap = times[i] - times[i - 1]
                gaps.append(gap)
                if gap < interval_s - delivery_allowance_s or (
                    odds_only_before and times[i] - times[i - 2] < 2 * interval_s - delivery_allowance_s
                ):
                    too_soon += 1
                odds_only_before = True
            arrivals = first_arrival[race_id]
            for publication in by_race[race_id]:
                i = bisect.bisect_left(versions, publication.version)
                if i == len(versions):
                    lost += 1
                    continue
                superseded += versions[i] > publication.version
                kind, allowed = "urgent", publication.at
                if not publication.urgent:
                    wait = 0.0 if i == 0 else arrivals[i - 1] + interval_s - publication.at
                    kind = "odds_after_window" if wait > 0 else "odds_at_once"
                    allowed += min(interval_s, max(0.0, wait))
                latency = max(0.0, times[i] - allowed)
                latencies[kind].append(latency)
                staleness.append(times[i] - publication.at)
                late += latency > delivery_allowance_s
    every = [latency for values in latencies.values() for latency in values]

    def ms(values: list[float]) -> dict[str, float]:
        return {name: round(percentile(values, share) * 1000, 1) for name, share in PERCENTILES.items()}

    return {
        "publications": len(publications),
        "urgent_publications": len(urgent_versions),
        "summaries_sent": sum(len(versions) for versions in reference.values()),
        "summaries_received": sum(len(versions) for client in receipts for versions, _ in client.values()),
        "deliveries": len(every),
        "superseded_share": round(superseded / len(every), 3) if every else 0.0,
        "violations": {
            "lost": lost,
            "late": late,
            "too_soon": too_soon,
            "out_of_order": out_of_order,
            "inconsistent": inconsistent,
        },
        "repeats": repeats,
        "odds_only_gap_ms": {
            "min": round(min(gaps, default=0.0) * 1000, 1),
            "p1": round(percentile(gaps, 0.01) * 1000, 1),
        },
        "latency_ms": ms(every),
        # What is measured without estimating a send: status changes, results, and odds that went at once.
        "latency_exact_ms": ms(latencies["urgent"] + latencies["odds_at_once"]),
        "latency_by_kind_ms": {kind: ms(values) | {"count": len(values)} for kind, values in latencies.items()},
        "staleness_ms": ms(staleness),
    }


# --- Setting the meeting up ---------------------------------------------------------------------

MEETING_SETUP_SCRIPT = """
import json
from races.models import Race, Starter
from races.services import race_reset

races = list(Race.objects.filter(meeting__code={meeting_id!r}).order_by("race_number").values_list("pk", flat=True))
for race_id in races:
    race_reset(race_id=race_id)
print(json.dumps({{
    race_id: {{
        "start": Race.objects.get(pk=race_id).race_datetime.isoformat(),
        "runners": list(
            Starter.objects.filter(race_id=race_id, scratched=False).order_by("runner_number", "pk")
            .values_list("horse_id", flat=True)
        ),
    }}
    for race_id in races
}}))
"""


def meeting_prepare(database: BenchDatabase, meeting_id: str = MEETING_ID) -> dict[int, tuple[dt.datetime, list[int]]]:
    """Reset the meeting's races (scheduled, no odds, numbered afresh); return each one's start
    and runners."""
    races = json.loads(database.database.shell(MEETING_SETUP_SCRIPT.format(meeting_id=meeting_id)))
    return {int(race_id): (dt.datetime.fromisoformat(r["start"]), r["runners"]) for race_id, r in races.items()}
