"""
Run the fan-out benchmark: `make bench` (every scenario) or `python -m bench --help`.

Everything runs on loopback and is started here: the project's server (Daphne, production-like
settings, the fixture race day), the baseline websockets server, and clients in two separate
processes. Updates go through the project's real path: a feed POSTs odds to the API, which
stores them and broadcasts through live/broadcasting.py; each carries its send time. The meeting
scenario (bench/meeting.py) has its clients follow a meeting's race summaries on /ws/live.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from bench import meeting
from bench.clients import client_process, percentile, raise_file_limit
from bench.servers import Deployment, cpu_seconds, prepare_database, start_baseline, start_project
from tests.servers import rss_bytes

REPO_DIR = Path(__file__).resolve().parent.parent
CLIENT_PROCESSES = 2
FEED_ONLY_INDEX = 10_000  # the feed-only updates' odds differ from every scenario's
RACE_ID = 1  # fixture race: Addington R1, 11 starters (an odds_update of about 600 bytes)


@dataclass
class Scenario:
    name: str
    clients: int
    layer: str = "memory"  # or "redis"
    processes: int = 1
    updates: int = 20
    interval_s: float = 0.2
    idle: bool = False  # connect and measure memory only
    baseline: bool = True
    # Clients on /ws/live, each subscribed to a meeting of 10 races whose markets all move for
    # this long (bench/meeting.py); compared with the single-race scenario named.
    meeting_s: float = 0.0
    compared_with: str | None = None
    # With every client connected and nothing published: what the servers spend anyway
    idle_window_s: float = 3.0


@dataclass
class Measurement:
    server: str
    clients: int
    connected: int = 0
    storm_s: float = 0.0
    connect_p50_ms: float = 0.0
    connect_p99_ms: float = 0.0
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    max_ms: float = 0.0
    cpu_per_broadcast_ms: float = 0.0
    # Of that, the feed's own cost: the same updates published once every client has gone (the
    # project: the HTTP request, validation and the database write; the baseline: its control
    # message). The rest is the fan-out: receiving the update and writing it to every client.
    feed_cpu_per_update_ms: float = 0.0
    fanout_cpu_per_broadcast_ms: float = 0.0
    # What the servers spend a second with the clients connected and nothing published (pings,
    # timers): measured before publishing and left out of the fan-out's figure.
    idle_cpu_ms_per_s: float = 0.0
    cpu_per_message_us: float = 0.0  # per message delivered to a client
    # Over Redis: commands Redis ran per update while publishing, counted by Redis itself
    # (INFO commandstats), and the commands that ran most.
    redis_commands_per_update: float = 0.0
    redis_commands: dict[str, int] = field(default_factory=dict)
    redis_idle_commands_per_s: float = 0.0  # left out of the figure per update
    expected: int = 0
    delivered: int = 0
    throughput_per_s: float = 0.0
    rss_per_connection_kib: float = 0.0
    # The machine's 1-minute load average as publishing ended: the clients, the server and
    # whatever else runs share the cores, and a run beside a busy neighbour is slower.
    load_average: float = 0.0
    failures: list[str] = field(default_factory=list)
    summaries: dict | None = None  # the meeting scenario's: bench.meeting.summary_rule_report


FULL = [
    Scenario("memory, 500 clients", 500),
    Scenario("memory, 2,000 clients", 2000),
    # Right after the scenario it is compared with: the machine's other load changes by the minute.
    Scenario(
        "memory, 2,000 clients, a meeting of 10 races",
        2000,
        meeting_s=20.0,
        baseline=False,
        compared_with="memory, 2,000 clients",
    ),
    Scenario("memory, 5,000 clients, 1 update/s", 5000, updates=10, interval_s=1.0),
    Scenario("redis, 1 process, 2,000 clients", 2000, layer="redis"),
    Scenario("redis, 2 processes, 2,000 clients", 2000, layer="redis", processes=2, baseline=False),
    Scenario(
        "redis, 1 process, 5,000 clients, 1 update/s", 5000, layer="redis", updates=10, interval_s=1.0, baseline=False
    ),
    Scenario(
        "redis, 2 processes, 5,000 clients, 1 update/s",
        5000,
        layer="redis",
        processes=2,
        updates=10,
        interval_s=1.0,
        baseline=False,
    ),
    Scenario("redis, 1 process, 2,000 clients, burst", 2000, layer="redis", interval_s=0.0, baseline=False),
    Scenario(
        "redis, 2 processes, 2,000 clients, burst", 2000, layer="redis", processes=2, interval_s=0.0, baseline=False
    ),
    Scenario("memory, 10,000 idle connections", 10000, updates=0, idle=True),
]
SMOKE = [
    Scenario("smoke: memory, 50 clients", 50, updates=5, interval_s=0.1, idle_window_s=0.5),
    Scenario(
        "smoke: memory, 50 clients, a meeting of 10 races",
        50,
        meeting_s=3.0,
        baseline=False,
        compared_with="smoke: memory, 50 clients",
    ),
]
# What the meeting scenario must show against its single-race scenario of the same run (issue 14).
MEETING_P99_RATIO_MAX = 2.0
MEETING_CPU_PER_MESSAGE_RATIO_MAX = 1.5
MEETING_RSS_PER_CONNECTION_KIB_MAX = 40.0


class ClientProcesses:
    """The scenario's clients, split over CLIENT_PROCESSES processes. Each runs ``target`` with
    ``arguments(count, connected, go)`` (its share of the clients, an event it sets once they are
    connected, and the event that starts the publishing) and the queue it puts its report on."""

    def __init__(self, clients: int, target: Callable[..., None], arguments: Callable[..., tuple]) -> None:
        context = multiprocessing.get_context("spawn")
        self.go = context.Event()
        self.results = context.Queue()
        self.connected = [context.Event() for _ in range(CLIENT_PROCESSES)]
        per_process = [clients // CLIENT_PROCESSES + (i < clients % CLIENT_PROCESSES) for i in range(CLIENT_PROCESSES)]
        self.workers = [
            context.Process(target=target, args=(*arguments(count, connected, self.go), self.results))
            for count, connected in zip(per_process, self.connected, strict=True)
        ]

    def connect(self, deployment: Deployment) -> tuple[int, int]:
        """Start the clients and wait until all are connected; return the servers' memory
        before and after."""
        rss_before = sum(rss_bytes(pid) for pid in deployment.pids)
        for worker in self.workers:
            worker.start()
        for event in self.connected:
            event.wait(timeout=300)
        time.sleep(1.0)  # let the servers settle before reading their memory
        return rss_before, sum(rss_bytes(pid) for pid in deployment.pids)

    def reports(self) -> list[dict]:
        return [self.results.get(timeout=600) for _ in self.workers]

    def join(self) -> None:
        for worker in self.workers:
            worker.join(timeout=30)


def measure(deployment: Deployment, scenario: Scenario, label: str) -> Measurement:
    """Connect the scenario's clients to the deployment, publish, and measure."""
    clients = ClientProcesses(
        scenario.clients,
        client_process,
        lambda count, connected, go: (
            deployment.client_urls,
            count,
            scenario.updates,
            connected,
            go,
            120 + scenario.updates * 5,
        ),
    )
    rss_before, rss_after = clients.connect(deployment)
    idle = idle_rates(deployment, scenario.idle_window_s) if scenario.updates else IdleRates()
    redis_before = redis_command_counts(deployment.redis_url) if deployment.redis_url else {}
    cpu_before = sum(cpu_seconds(pid) for pid in deployment.pids)
    window_started = time.monotonic()
    clients.go.set()
    first_sent = time.time()
    for index in range(scenario.updates):
        deployment.publish(index)
        if scenario.interval_s:
            time.sleep(scenario.interval_s)
    load_average = os.getloadavg()[0]
    reports = clients.reports()
    cpu_after = sum(cpu_seconds(pid) for pid in deployment.pids)
    redis_delta = redis_command_delta(redis_before, redis_command_counts(deployment.redis_url)) if redis_before else {}
    window_s = time.monotonic() - window_started
    clients.join()
    feed_cpu_s = feed_cpu_seconds(deployment, scenario.updates)
    latencies = [v for r in reports for v in r["latencies"]]
    connect_times = [v for r in reports for v in r["connect_times"]]
    delivered = sum(r["received"] for r in reports)
    last = max((r["last_receive_at"] for r in reports), default=first_sent)
    return Measurement(
        server=label,
        clients=scenario.clients,
        connected=len(connect_times),
        storm_s=round(max(r["storm_s"] for r in reports), 2),
        connect_p50_ms=round(percentile(connect_times, 0.5) * 1000, 1),
        connect_p99_ms=round(percentile(connect_times, 0.99) * 1000, 1),
        p50_ms=round(percentile(latencies, 0.5) * 1000, 1),
        p99_ms=round(percentile(latencies, 0.99) * 1000, 1),
        max_ms=round(max(latencies, default=0) * 1000, 1),
        cpu_per_broadcast_ms=round((cpu_after - cpu_before) / scenario.updates * 1000, 1) if scenario.updates else 0.0,
        feed_cpu_per_update_ms=round(feed_cpu_s / scenario.updates * 1000, 1) if scenario.updates else 0.0,
        idle_cpu_ms_per_s=round(idle.cpu_s_per_s * 1000, 1),
        fanout_cpu_per_broadcast_ms=(
            round((cpu_after - cpu_before - feed_cpu_s - idle.cpu_s_per_s * window_s) / scenario.updates * 1000, 1)
            if scenario.updates
            else 0.0
        ),
        cpu_per_message_us=round((cpu_after - cpu_before) / delivered * 1e6, 1) if delivered else 0.0,
        redis_commands_per_update=(
            round((sum(redis_delta.values()) - idle.redis_commands_per_s * window_s) / scenario.updates, 1)
            if redis_delta and scenario.updates
            else 0.0
        ),
        redis_idle_commands_per_s=round(idle.redis_commands_per_s, 1),
        redis_commands=dict(sorted(redis_delta.items(), key=lambda item: -item[1])[:8]),
        expected=scenario.clients * scenario.updates,
        delivered=delivered,
        throughput_per_s=round(delivered / max(last - first_sent, 1e-6), 0) if delivered else 0.0,
        rss_per_connection_kib=round((rss_after - rss_before) / max(len(connect_times), 1) / 1024, 1),
        load_average=round(load_average, 2),
        failures=[f for r in reports for f in r["failures"]][:5],
    )


@dataclass
class IdleRates:
    cpu_s_per_s: float = 0.0
    redis_commands_per_s: float = 0.0


def idle_rates(deployment: Deployment, window_s: float) -> IdleRates:
    """Return what the servers spend with every client connected and nothing published (pings,
    timers, presence; Redis: the layer's blocking reads and our presence): subtracted from the
    publishing window's figures, so that what is left is the broadcasts' own cost."""
    redis_before = redis_command_counts(deployment.redis_url) if deployment.redis_url else {}
    cpu_before = sum(cpu_seconds(pid) for pid in deployment.pids)
    time.sleep(window_s)
    cpu_s = sum(cpu_seconds(pid) for pid in deployment.pids) - cpu_before
    redis_delta = redis_command_delta(redis_before, redis_command_counts(deployment.redis_url)) if redis_before else {}
    return IdleRates(cpu_s / window_s, sum(redis_delta.values()) / window_s)


def feed_cpu_seconds(deployment: Deployment, updates: int) -> float:
    """Publish ``updates`` more updates with no client connected and return the servers' CPU
    time for them: the feed's part of a broadcast, measured apart from the fan-out's."""
    if not updates:
        return 0.0
    time.sleep(1.0)  # the clients' goodbyes are handled before counting
    before = sum(cpu_seconds(pid) for pid in deployment.pids)
    for index in range(updates):
        deployment.publish(FEED_ONLY_INDEX + index)
    return sum(cpu_seconds(pid) for pid in deployment.pids) - before


def redis_command_counts(url: str) -> dict[str, int]:
    """Return how many times Redis has run each command since it started (INFO commandstats)."""
    import redis

    client = redis.Redis.from_url(url)
    try:
        stats = client.info("commandstats")
    finally:
        client.close()
    return {name.removeprefix("cmdstat_"): int(values["calls"]) for name, values in stats.items()}


def redis_command_delta(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    """Return the commands run between two counts, less the INFO that read the first."""
    delta = {name: calls - before.get(name, 0) for name, calls in after.items()}
    delta["info"] = delta.get("info", 0) - 1
    return {name: calls for name, calls in delta.items() if calls > 0}


def measure_meeting(deployment: Deployment, scenario: Scenario, label: str, races: dict) -> Measurement:
    """Subscribe the scenario's clients to the meeting on /ws/live, run the feed's plan for the
    meeting (bench/meeting.py) and check every client's race summaries against it."""
    feed = meeting.MeetingFeed(deployment.feed, races)
    feed.open_markets()  # before anyone watches: the run starts from open markets
    finished = multiprocessing.get_context("spawn").Event()
    timeout_s = 300 + scenario.meeting_s
    clients = ClientProcesses(
        scenario.clients,
        meeting.meeting_client_process,
        lambda count, connected, go: (
            deployment.client_urls,
            count,
            meeting.MEETING_ID,
            connected,
            go,
            finished,
            timeout_s,
        ),
    )
    rss_before, rss_after = clients.connect(deployment)
    plan = meeting.meeting_plan(sorted(races), duration_s=scenario.meeting_s)
    cpu_before = sum(cpu_seconds(pid) for pid in deployment.pids)
    clients.go.set()
    started = time.monotonic()
    for step in plan:
        time.sleep(max(0.0, started + step.at_s - time.monotonic()))  # late if the feed is slow: as it happens
        feed.publish(step)
    publishing_s = time.monotonic() - started
    load_average = os.getloadavg()[0]
    time.sleep(meeting.SETTLE_S)
    finished.set()
    reports = clients.reports()
    cpu_after = sum(cpu_seconds(pid) for pid in deployment.pids)
    clients.join()
    receipts = [client for r in reports for client in r["receipts"]]
    report = meeting.summary_rule_report(feed.publications, receipts)
    report["publishing_s"] = round(publishing_s, 1)
    report["publications_per_s"] = round(len(plan) / publishing_s, 1)
    connect_times = [v for r in reports for v in r["connect_times"]]
    delivered = report["summaries_received"]
    arrivals = [at for client in receipts for _, times in client.values() for at in times[-1:]]
    first_sent = feed.publications[0].at if feed.publications else time.time()
    cpu_s = cpu_after - cpu_before
    return Measurement(
        server=label,
        clients=scenario.clients,
        connected=len(connect_times),
        storm_s=round(max(r["storm_s"] for r in reports), 2),
        connect_p50_ms=round(percentile(connect_times, 0.5) * 1000, 1),
        connect_p99_ms=round(percentile(connect_times, 0.99) * 1000, 1),
        # Measured as the single-race scenario's are, with no send to estimate (bench/meeting.py).
        p50_ms=report["latency_exact_ms"]["p50"],
        p99_ms=report["latency_exact_ms"]["p99"],
        max_ms=report["latency_exact_ms"]["max"],
        cpu_per_broadcast_ms=round(cpu_s / report["summaries_sent"] * 1000, 1) if report["summaries_sent"] else 0.0,
        cpu_per_message_us=round(cpu_s / delivered * 1e6, 1) if delivered else 0.0,
        expected=report["summaries_sent"] * scenario.clients,
        delivered=delivered,
        throughput_per_s=round(delivered / max(max(arrivals, default=first_sent) - first_sent, 1e-6), 0),
        rss_per_connection_kib=round((rss_after - rss_before) / max(len(connect_times), 1) / 1024, 1),
        load_average=round(load_average, 2),
        failures=[f for r in reports for f in r["failures"]][:5],
        summaries=report,
    )


def run_scenario(scenario: Scenario, database, workdir: Path) -> list[Measurement]:
    measurements = []
    label = f"project ({scenario.processes} × Daphne, {scenario.layer})"
    if scenario.meeting_s:
        races = meeting.meeting_prepare(database)
        project = start_project(scenario, database, workdir, client_path="/ws/live")
        try:
            measurements.append(measure_meeting(project, scenario, label, races))
        finally:
            project.stop()
        return measurements
    project = start_project(scenario, database, workdir)
    try:
        measurements.append(measure(project, scenario, label))
    finally:
        project.stop()
    if scenario.baseline:
        baseline = start_baseline(database, workdir, race_id=RACE_ID)
        try:
            measurements.append(measure(baseline, scenario, "baseline (websockets.broadcast)"))
        finally:
            baseline.stop()
    return measurements


def comparisons(results: list[dict]) -> list[dict]:
    """Return each meeting scenario against its single-race scenario of the same run (the
    project's measurements), with issue 14's targets met or not."""
    by_name = {result["scenario"]: result for result in results}
    found = []
    for result in results:
        name = result["settings"].get("compared_with")
        if not name or not result["measurements"]:
            continue
        this = result["measurements"][0]
        violations = sum(this["summaries"]["violations"].values())
        comparison = {
            "scenario": result["scenario"],
            "compared_with": name if name in by_name else None,
            "rss_per_connection_kib": this["rss_per_connection_kib"],
            "violations": violations,
            "targets": {
                "one_second_rule": violations == 0 and not this["failures"],
                "rss_per_connection": this["rss_per_connection_kib"] <= MEETING_RSS_PER_CONNECTION_KIB_MAX,
            },
        }
        if name in by_name:
            single = by_name[name]["measurements"][0]
            p99_ratio = this["p99_ms"] / single["p99_ms"] if single["p99_ms"] else float("inf")
            cpu_ratio = (
                this["cpu_per_message_us"] / single["cpu_per_message_us"]
                if single["cpu_per_message_us"]
                else float("inf")
            )
            comparison |= {
                "load_average": [this["load_average"], single["load_average"]],
                "p99_ms": [this["p99_ms"], single["p99_ms"]],
                "p99_ratio": round(p99_ratio, 2),
                "cpu_per_message_us": [this["cpu_per_message_us"], single["cpu_per_message_us"]],
                "cpu_per_message_ratio": round(cpu_ratio, 2),
            }
            comparison["targets"] |= {
                "p99": p99_ratio <= MEETING_P99_RATIO_MAX,
                "cpu_per_message": cpu_ratio <= MEETING_CPU_PER_MESSAGE_RATIO_MAX,
            }
        found.append(comparison)
    return found


def _met(ok: bool) -> str:
    return "met" if ok else "**missed**"


def markdown(results: list[dict], command: str) -> str:
    lines = [
        "| scenario | server | clients | connect storm | p50 | p99 | max | CPU / broadcast | of which feed, fan-out | "
        "idle CPU | CPU / message | Redis commands / update | delivered | throughput | RSS / conn |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for result in results:
        for m in result["measurements"]:
            lines.append(
                f"| {result['scenario']} | {m['server']} | {m['connected']:,}/{m['clients']:,} | {m['storm_s']} s | "
                f"{m['p50_ms']} ms | {m['p99_ms']} ms | {m['max_ms']} ms | {m['cpu_per_broadcast_ms']} ms | "
                f"{m['feed_cpu_per_update_ms']} ms, {m['fanout_cpu_per_broadcast_ms']} ms | "
                f"{m.get('idle_cpu_ms_per_s', 0.0)} ms/s | "
                f"{m['cpu_per_message_us']} µs | {m['redis_commands_per_update'] or '-'} | "
                f"{m['delivered']:,}/{m['expected']:,} | {m['throughput_per_s']:,.0f}/s | "
                f"{m['rss_per_connection_kib']} KiB |"
            )
    meetings = [(r["scenario"], r["measurements"][0]["summaries"]) for r in results if r["settings"].get("meeting_s")]
    if meetings:
        lines += [
            "",
            "Race summaries: p99 latency from when the one-second rule lets an update go (exact: status changes, results "
            "and odds that go at once; estimated: odds that waited for their race's second), staleness from its "
            "publication:",
            "",
            "| scenario | updates (urgent) | summaries | superseded | p99: exact / odds that waited | "
            "staleness p50 / p99 / max | odds-only gap min | repeats | lost, late, too soon, out of order, inconsistent |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for name, s in meetings:
            v = s["violations"]
            lines.append(
                f"| {name} | {s['publications']} ({s['urgent_publications']}) | {s['summaries_sent']} | "
                f"{s['superseded_share']:.0%} | {s['latency_exact_ms']['p99']} / "
                f"{s['latency_by_kind_ms']['odds_after_window']['p99']} ms | "
                f"{s['staleness_ms']['p50']} / {s['staleness_ms']['p99']} / {s['staleness_ms']['max']} ms | "
                f"{s['odds_only_gap_ms']['min']} ms | {s['repeats']:,} | "
                f"{v['lost']}, {v['late']}, {v['too_soon']}, {v['out_of_order']}, {v['inconsistent']} |"
            )
    compared = comparisons(results)
    if compared:
        lines += [
            "",
            "| scenario | compared with | p99 (≤ 2×) | CPU / message (≤ 1.5×) | RSS / conn (≤ 40 KiB) | one-second rule (0 violations) | load average |",
            "|---|---|---:|---:|---:|---:|---:|",
        ]
        for c in compared:
            targets = c["targets"]
            p99 = cpu = load = "(not run)"
            if c["compared_with"]:
                load = f"{c['load_average'][0]} vs {c['load_average'][1]}"
                p99 = f"{c['p99_ms'][0]} vs {c['p99_ms'][1]} ms: {c['p99_ratio']}×, {_met(targets['p99'])}"
                cpu = (
                    f"{c['cpu_per_message_us'][0]} vs {c['cpu_per_message_us'][1]} µs: {c['cpu_per_message_ratio']}×, "
                    f"{_met(targets['cpu_per_message'])}"
                )
            lines.append(
                f"| {c['scenario']} | {c['compared_with'] or '(not run)'} | {p99} | {cpu} | "
                f"{c['rss_per_connection_kib']} KiB, {_met(targets['rss_per_connection'])} | "
                f"{c['violations']}, {_met(targets['one_second_rule'])} | {load} |"
            )
    return "\n".join(lines)


def machine() -> dict:
    import channels
    import daphne
    import django
    import websockets

    return {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "django": django.__version__,
        "channels": channels.__version__,
        "daphne": daphne.__version__,
        "websockets": websockets.__version__,
        "cpu_model": next(
            (line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), "?"
        ),
        "database": "postgresql" if os.environ.get("DATABASE_URL", "").startswith("postgres") else "sqlite",
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[1])
    parser.add_argument("--smoke", action="store_true", help="small scenarios, seconds long (CI)")
    parser.add_argument("--only", action="append", default=[], help="run scenarios whose name contains this")
    parser.add_argument("--json", type=Path, default=None, help="write results as JSON here")
    parser.add_argument("--markdown", type=Path, default=None, help="write the results table here")
    args = parser.parse_args(argv)
    raise_file_limit()
    pool = SMOKE if args.smoke else FULL
    scenarios = [s for s in pool if not args.only or any(o in s.name for o in args.only)]
    command = "python -m bench " + " ".join(argv if argv is not None else sys.argv[1:])
    results = []
    with tempfile.TemporaryDirectory(prefix="racing-bench-") as directory:
        workdir = Path(directory)
        database = prepare_database(workdir, redis_prefix=f"bench-{uuid.uuid4().hex[:8]}")
        try:
            for scenario in scenarios:
                print(f"== {scenario.name}", flush=True)
                measurements = run_scenario(scenario, database, workdir)
                for m in measurements:
                    print(
                        f"   {m.server}: {m.delivered}/{m.expected} delivered, p50 {m.p50_ms} ms, p99 {m.p99_ms} ms, "
                        f"CPU/broadcast {m.cpu_per_broadcast_ms} ms (feed {m.feed_cpu_per_update_ms} + fan-out "
                        f"{m.fanout_cpu_per_broadcast_ms}, idle {m.idle_cpu_ms_per_s} ms/s), "
                        f"CPU/message {m.cpu_per_message_us} µs, "
                        + (
                            f"Redis {m.redis_commands_per_update}/update (idle {m.redis_idle_commands_per_s}/s) {m.redis_commands}, "
                            if m.redis_commands
                            else ""
                        )
                        + f"storm {m.storm_s} s, RSS/conn {m.rss_per_connection_kib} KiB, load {m.load_average}"
                        + (f", failures {m.failures}" if m.failures else "")
                        + (f"\n   summaries: {json.dumps(m.summaries)}" if m.summaries else ""),
                        flush=True,
                    )
                results.append(
                    {
                        "scenario": scenario.name,
                        "settings": asdict(scenario),
                        "measurements": [asdict(m) for m in measurements],
                    }
                )
        finally:
            database.drop()
    report = {
        "command": command,
        "machine": machine(),
        "queries_per_connect": database.queries_per_connect,
        "results": results,
        "comparisons": comparisons(results),
    }
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=1))
    table = markdown(results, command)
    if args.markdown:
        write_table(args.markdown, table, report["machine"], command)
    print(table)


START, END = "<!-- bench:start -->", "<!-- bench:end -->"


def write_table(path: Path, table: str, machine_facts: dict, command: str) -> None:
    """Put the table between the markers of an existing document, or make a file of it."""
    block = (
        f"{START}\nMeasured with `{command}` on {machine_facts['cpus']} cores ({machine_facts['cpu_model']}), "
        f"{machine_facts.get('database', 'sqlite')}, "
        f"Python {machine_facts['python']}, Django {machine_facts['django']}, Channels {machine_facts['channels']}, "
        f"Daphne {machine_facts['daphne']}, websockets {machine_facts['websockets']}.\n\n{table}\n{END}"
    )
    text = path.read_text() if path.exists() else ""
    if START in text and END in text:
        text = text[: text.index(START)] + block + text[text.index(END) + len(END) :]
    else:
        text = block + "\n"
    path.write_text(text)
