"""
Run the fan-out benchmark: `make bench` (every scenario) or `python -m bench --help`.

Everything runs on loopback and is started here: the project's server (Daphne, production-like
settings, the fixture race day), the baseline websockets server, and clients in two separate
processes. Updates go through the project's real path: a feed POSTs odds to the API, which
stores them and broadcasts through live/broadcasting.py; each carries its send time.
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
from dataclasses import asdict, dataclass, field
from pathlib import Path

from bench.clients import client_process, raise_file_limit
from bench.servers import Deployment, cpu_seconds, prepare_database, rss_bytes, start_baseline, start_project

REPO_DIR = Path(__file__).resolve().parent.parent
CLIENT_PROCESSES = 2
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
    expected: int = 0
    delivered: int = 0
    throughput_per_s: float = 0.0
    rss_per_connection_kib: float = 0.0
    failures: list[str] = field(default_factory=list)


FULL = [
    Scenario("memory, 500 clients", 500),
    Scenario("memory, 2,000 clients", 2000),
    Scenario("memory, 5,000 clients, 1 update/s", 5000, updates=10, interval_s=1.0),
    Scenario("redis, 1 process, 2,000 clients", 2000, layer="redis"),
    Scenario("redis, 2 processes, 2,000 clients", 2000, layer="redis", processes=2, baseline=False),
    Scenario("redis, 1 process, 5,000 clients, 1 update/s", 5000, layer="redis", updates=10, interval_s=1.0, baseline=False),
    Scenario("redis, 2 processes, 5,000 clients, 1 update/s", 5000, layer="redis", processes=2, updates=10, interval_s=1.0, baseline=False),
    Scenario("redis, 1 process, 2,000 clients, burst", 2000, layer="redis", interval_s=0.0, baseline=False),
    Scenario("redis, 2 processes, 2,000 clients, burst", 2000, layer="redis", processes=2, interval_s=0.0, baseline=False),
    Scenario("memory, 10,000 idle connections", 10000, updates=0, idle=True),
]
SMOKE = [Scenario("smoke: memory, 50 clients", 50, updates=5, interval_s=0.1)]


def percentile(values: list[float], share: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def measure(deployment: Deployment, scenario: Scenario, label: str) -> Measurement:
    """Connect the scenario's clients to the deployment, publish, and measure."""
    context = multiprocessing.get_context("spawn")
    connected = [context.Event() for _ in range(CLIENT_PROCESSES)]
    go = context.Event()
    results = context.Queue()
    per_process = [scenario.clients // CLIENT_PROCESSES + (i < scenario.clients % CLIENT_PROCESSES) for i in range(CLIENT_PROCESSES)]
    rss_before = sum(rss_bytes(pid) for pid in deployment.pids)
    workers = [
        context.Process(
            target=client_process,
            args=(deployment.client_urls, count, scenario.updates, connected[i], go, 120 + scenario.updates * 5, results),
        )
        for i, count in enumerate(per_process)
    ]
    for worker in workers:
        worker.start()
    for event in connected:
        event.wait(timeout=300)
    time.sleep(1.0)  # let the servers settle before reading their memory
    rss_after = sum(rss_bytes(pid) for pid in deployment.pids)
    cpu_before = sum(cpu_seconds(pid) for pid in deployment.pids)
    go.set()
    first_sent = time.time()
    for index in range(scenario.updates):
        deployment.publish(index)
        if scenario.interval_s:
            time.sleep(scenario.interval_s)
    reports = [results.get(timeout=600) for _ in workers]
    cpu_after = sum(cpu_seconds(pid) for pid in deployment.pids)
    for worker in workers:
        worker.join(timeout=30)
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
        expected=scenario.clients * scenario.updates,
        delivered=delivered,
        throughput_per_s=round(delivered / max(last - first_sent, 1e-6), 0) if delivered else 0.0,
        rss_per_connection_kib=round((rss_after - rss_before) / max(len(connect_times), 1) / 1024, 1),
        failures=[f for r in reports for f in r["failures"]][:5],
    )


def run_scenario(scenario: Scenario, database, workdir: Path) -> list[Measurement]:
    measurements = []
    project = start_project(scenario, database, workdir)
    try:
        measurements.append(measure(project, scenario, f"project ({scenario.processes} × Daphne, {scenario.layer})"))
    finally:
        project.stop()
    if scenario.baseline:
        baseline = start_baseline(database, workdir, race_id=RACE_ID)
        try:
            measurements.append(measure(baseline, scenario, "baseline (websockets.broadcast)"))
        finally:
            baseline.stop()
    return measurements


def markdown(results: list[dict], command: str) -> str:
    lines = [
        "| scenario | server | clients | connect storm | p50 | p99 | max | CPU / broadcast | delivered | throughput | RSS / conn |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for result in results:
        for m in result["measurements"]:
            lines.append(
                f"| {result['scenario']} | {m['server']} | {m['connected']:,}/{m['clients']:,} | {m['storm_s']} s | "
                f"{m['p50_ms']} ms | {m['p99_ms']} ms | {m['max_ms']} ms | {m['cpu_per_broadcast_ms']} ms | "
                f"{m['delivered']:,}/{m['expected']:,} | {m['throughput_per_s']:,.0f}/s | {m['rss_per_connection_kib']} KiB |"
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
        "cpu_model": next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?"),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[1])
    parser.add_argument("--smoke", action="store_true", help="one small scenario, seconds long (CI)")
    parser.add_argument("--only", action="append", default=[], help="run scenarios whose name contains this")
    parser.add_argument("--json", type=Path, default=None, help="write results as JSON here")
    parser.add_argument("--markdown", type=Path, default=None, help="write the results table here")
    args = parser.parse_args(argv)
    raise_file_limit()
    scenarios = SMOKE if args.smoke else [s for s in FULL if not args.only or any(o in s.name for o in args.only)]
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
                    print(f"   {m.server}: {m.delivered}/{m.expected} delivered, p50 {m.p50_ms} ms, p99 {m.p99_ms} ms, "
                          f"CPU/broadcast {m.cpu_per_broadcast_ms} ms, storm {m.storm_s} s, RSS/conn {m.rss_per_connection_kib} KiB"
                          + (f", failures {m.failures}" if m.failures else ""), flush=True)
                results.append({"scenario": scenario.name, "settings": asdict(scenario), "measurements": [asdict(m) for m in measurements]})
        finally:
            database.drop()
    report = {"command": command, "machine": machine(), "queries_per_connect": database.queries_per_connect, "results": results}
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
        f"Python {machine_facts['python']}, Django {machine_facts['django']}, Channels {machine_facts['channels']}, "
        f"Daphne {machine_facts['daphne']}, websockets {machine_facts['websockets']}.\n\n{table}\n{END}"
    )
    text = path.read_text() if path.exists() else ""
    if START in text and END in text:
        text = text[: text.index(START)] + block + text[text.index(END) + len(END) :]
    else:
        text = block + "\n"
    path.write_text(text)
