"""
The soak run: race after race for a bounded time against two real Daphne processes sharing a
database and a Redis of the run's own, with fans joining, leaving and dropping their connection,
a hostile client throwing bad input, and faults injected (a Daphne process killed and restarted,
Redis restarted). Afterwards:

- every fan that stayed for a race has every one of its updates, numbered 1..n without a gap or a
  repeat, ending with the result, and n is what the database stored for that race;
- every fan that came and went saw consecutive updates while it was there;
- every bad input was answered as docs/protocol.md says;
- each server process is back to its baseline of connections, watched races, simulations,
  asyncio tasks and open files, and its memory is reported against its baseline.

    python -m bench.soak                                  # 10 minutes; writes docs/reliability.md
    python -m bench.soak --duration-s 30 --json out.json  # a short run, report only
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import datetime as dt
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import websockets
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from bench.clients import raise_file_limit
from bench.servers import REPO_DIR, free_port, prepare_database, rss_bytes, wait_listening

RACE_IDS = list(range(1, 20))  # the fixture race day's nineteen races
MARKER_START, MARKER_END = "<!-- soak:start -->", "<!-- soak:end -->"
DOCUMENTED_CLOSES = {1009, 4429}  # what the hostile client may be closed with (docs/protocol.md)
RACE_TIMEOUT_S = 90


# --- Processes ------------------------------------------------------------------------------


class OwnRedis:
    """A Redis of the run's own on a spare port, so that it can be restarted mid-race."""

    def __init__(self, directory: Path) -> None:
        self.port = free_port()
        self.directory = directory
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(self.directory)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            ping = subprocess.run(["redis-cli", "-p", str(self.port), "ping"], capture_output=True, text=True)
            if ping.stdout.strip() == "PONG":
                return
            time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()


@dataclass
class Server:
    port: int
    environment: dict[str, str]
    log_dir: Path
    process: subprocess.Popen | None = None
    # Taken at the first quiet moment after a wave it served (again after a restart): its fan-out
    # tasks, its Redis and database connections are open by then, as they stay.
    baseline: dict | None = None
    waves_served: int = 0
    rss_mib_samples: list[float] = field(default_factory=list)  # at each quiet moment since the baseline

    def start(self) -> None:
        log = self.log_dir / f"daphne-{self.port}.log"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "racing.server", "--bind", "127.0.0.1", "--port", str(self.port), "-v", "0"],
            cwd=REPO_DIR, env=self.environment, stdout=log.open("ab"), stderr=subprocess.STDOUT,
        )  # fmt: skip
        wait_listening(self.port, self.process, log)
        self.baseline = None
        self.waves_served = 0
        self.rss_mib_samples = []

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()

    @property
    def ws_base(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def health(self) -> dict:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/healthz", timeout=5) as response:
            return json.loads(response.read())

    def resources(self) -> dict:
        pid = self.process.pid
        descriptors = [os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")]
        return {
            **{k: v for k, v in self.health().items() if k != "status"},
            "open_files": len(descriptors),
            "open_sockets": sum(d.startswith("socket:") for d in descriptors),
            "rss_mib": round(rss_bytes(pid) / 2**20, 1),
        }


# --- Fans -------------------------------------------------------------------------------------


@dataclass
class Tally:
    fans: dict[str, int] = field(default_factory=lambda: {"stayed": 0, "dropped and resumed": 0, "came and went": 0})
    updates_checked: int = 0
    reconnects: int = 0
    resumed: int = 0
    not_resumed: int = 0
    problems: list[str] = field(default_factory=list)
    lost_updates: int = 0
    bad_inputs: dict[str, int] = field(default_factory=dict)
    bad_inputs_answered: int = 0
    faults: dict[str, int] = field(default_factory=lambda: {"Daphne process killed (SIGKILL) and restarted": 0, "Redis restarted": 0})
    races: int = 0

    def problem(self, text: str) -> None:
        if len(self.problems) < 50:
            self.problems.append(text)


class Fan:
    """One phone on a race page: follows the protocol, resumes after every dropped connection,
    and checks that each update is the one after the last."""

    def __init__(self, *, race_id: int, servers: list[Server], tally: Tally, role: str, index: int) -> None:
        self.race_id = race_id
        self.servers = servers
        self.tally = tally
        self.role = role
        self.server_index = index % len(servers)
        self.epoch: str | None = None
        self.last_seq: int | None = 0 if role != "came and went" else None  # stayers want everything
        self.seqs: list[int] = []
        self.finished = False
        self.sessions = 0

    async def follow(self, *, stay_s: float | None = None, drops: int = 0) -> None:
        leave_at = time.monotonic() + stay_s if stay_s is not None else None
        drop_at = [time.monotonic() + random.uniform(0.5, 3.0) for _ in range(drops)]
        deadline = time.monotonic() + RACE_TIMEOUT_S
        while not self.finished and time.monotonic() < deadline:
            server = self.servers[self.server_index]
            try:
                async with websockets.connect(
                    f"{server.ws_base}/ws/races/{self.race_id}", open_timeout=5, ping_interval=None, close_timeout=1
                ) as ws:
                    dropped = await self._session(ws, leave_at, drop_at)
                    if not dropped:
                        return
            except (ConnectionClosed, OSError, InvalidHandshake, TimeoutError, asyncio.TimeoutError):
                pass
            # The connection went (a server killed, a drop): back off a little, perhaps to the
            # other server, and resume where it stood.
            self.tally.reconnects += 1
            if random.random() < 0.5:
                self.server_index = (self.server_index + 1) % len(self.servers)
            await asyncio.sleep(random.uniform(0.05, 0.4))
        if not self.finished and stay_s is None:
            self.tally.problem(f"race {self.race_id}: a {self.role} fan never saw the result (seqs {self.seqs[-3:]})")

    async def _session(self, ws, leave_at: float | None, drop_at: list[float]) -> bool:
        """Follow one connection; return True if it dropped (and should be resumed)."""
        first = json.loads(await asyncio.wait_for(ws.recv(), 10))
        assert first["type"] == "initial_state", first
        subscribe = {"type": "subscribe", "race_id": self.race_id}
        resuming = self.last_seq is not None
        if resuming:
            subscribe["last_seq"] = self.last_seq
            if self.epoch is not None:
                subscribe["epoch"] = self.epoch
        await ws.send(json.dumps(subscribe))
        reconnected, self.sessions = self.sessions > 0, self.sessions + 1
        while True:
            timeout_s = 15.0
            if leave_at is not None:
                timeout_s = max(0.01, leave_at - time.monotonic())
            if drop_at:
                timeout_s = min(timeout_s, max(0.01, drop_at[0] - time.monotonic()))
            try:
                message = json.loads(await asyncio.wait_for(ws.recv(), timeout_s))
            except (TimeoutError, asyncio.TimeoutError):
                if drop_at and time.monotonic() >= drop_at[0]:
                    drop_at.pop(0)
                    ws.transport.abort()  # the phone loses its signal: no close frame
                    return True
                if leave_at is not None and time.monotonic() >= leave_at:
                    return False
                self.tally.problem(f"race {self.race_id}: a {self.role} fan heard nothing for 15 s")
                return True
            kind = message["type"]
            if kind == "subscribed":
                self.epoch = message["epoch"]
                if resuming:
                    if message.get("resumed") is True:
                        self.tally.resumed += reconnected
                    else:
                        self.tally.not_resumed += 1
                        self.tally.problem(f"race {self.race_id}: resume after {self.last_seq} refused")
                        self.last_seq, self.seqs = None, []
            elif kind in ("odds_update", "result_update"):
                seq = message["seq"]
                if self.last_seq is not None and seq != self.last_seq + 1:
                    self.tally.problem(f"race {self.race_id}: {self.role} fan got seq {seq} after {self.last_seq}")
                self.last_seq = seq
                self.seqs.append(seq)
                self.tally.updates_checked += 1
                if kind == "result_update" and leave_at is None:
                    self.finished = True
                    return False
            elif kind == "error":
                self.tally.problem(f"race {self.race_id}: error {message}")


BAD_INPUTS: list[tuple[str, object]] = [
    ("text that is not JSON", "{not json"),
    ("JSON that is not an object", "[1, 2]"),
    ("an unknown type", '{"type": "unsubscribe", "race_id": 1}'),
    ("race_id as a string", '{"type": "subscribe", "race_id": "1"}'),
    ("a negative last_seq", '{"type": "subscribe", "race_id": RACE, "last_seq": -5}'),
    ("an epoch that is not a string", '{"type": "subscribe", "race_id": RACE, "last_seq": 1, "epoch": 7}'),
    ("a 5,000-digit number", '{"type": "subscribe", "race_id": ' + "9" * 5000 + "}"),
    ("nesting 30,000 deep", "[" * 30_000 + "]" * 30_000),
    ("a binary frame", b"\x00\xff\xfe binary"),
]


async def hostile(server: Server, race_id: int, tally: Tally) -> None:
    """Throw bad input at the server; each must get its documented answer."""

    def answered(name: str, ok: bool, detail: object) -> None:
        tally.bad_inputs[name] = tally.bad_inputs.get(name, 0) + 1
        if ok:
            tally.bad_inputs_answered += 1
        else:
            tally.problem(f"bad input {name!r} was answered with {str(detail)[:200]}")

    url = f"{server.ws_base}/ws/races/{race_id}"
    try:
        async with websockets.connect(url, open_timeout=5, max_size=2**20) as ws:
            await ws.recv()
            for name, frame in BAD_INPUTS:
                await ws.send(frame.replace("RACE", str(race_id)) if isinstance(frame, str) else frame)
                reply = json.loads(await asyncio.wait_for(ws.recv(), 5))
                answered(name, reply.get("type") == "error" and reply.get("code") == 4400, reply)
                await asyncio.sleep(0.25)  # under the message rate limit: each is answered, not cut off
        for name, frames in (("a 1 MiB frame", ["x" * 2**20]), ("a flood of 40 pings", ['{"type": "ping"}'] * 40)):
            async with websockets.connect(url, open_timeout=5, max_size=2**20) as ws:
                await ws.recv()
                try:
                    for frame in frames:
                        await ws.send(frame)
                    while True:
                        await asyncio.wait_for(ws.recv(), 5)
                except ConnectionClosed as closed:
                    code = closed.rcvd.code if closed.rcvd else None
                    answered(name, code in DOCUMENTED_CLOSES, f"close {code}")
                except (TimeoutError, asyncio.TimeoutError):
                    answered(name, False, "no close")
    except (OSError, ConnectionClosed, InvalidHandshake, TimeoutError, asyncio.TimeoutError):
        pass  # its server was killed by a fault: not the hostile client's doing


# --- The run ----------------------------------------------------------------------------------


@dataclass
class SoakConfig:
    duration_s: float
    parallel_races: int = 3
    stayers: int = 12
    droppers: int = 4
    churners: int = 8
    speedup: float = 20.0


def reset_races(environment: dict[str, str], race_ids: list[int]) -> None:
    script = f"from races.services import race_reset\nfor race_id in {race_ids!r}: race_reset(race_id=race_id)"
    subprocess.run(
        [sys.executable, "manage.py", "shell", "-v", "0", "-c", script],
        cwd=REPO_DIR, env=environment, check=True,
    )  # fmt: skip


def stored_update_count(servers: list[Server], race_id: int) -> int:
    """The race's updates as the database has them: its odds history, plus its result. Asked of
    whichever server answers (one may be restarting after a fault of another race's)."""
    for attempt in range(60):
        server = servers[attempt % len(servers)]
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/api/races/{race_id}/odds/", timeout=10) as response:
                return json.loads(response.read())["count"] + 1
        except OSError:
            time.sleep(0.25)
    raise RuntimeError(f"no server answered for race {race_id}'s stored updates")


async def run_race(race_id: int, servers: list[Server], config: SoakConfig, tally: Tally) -> None:
    stayers = [Fan(race_id=race_id, servers=servers, tally=tally, role="stayed", index=i) for i in range(config.stayers)]
    droppers = [
        Fan(race_id=race_id, servers=servers, tally=tally, role="dropped and resumed", index=i) for i in range(config.droppers)
    ]
    churners = [Fan(race_id=race_id, servers=servers, tally=tally, role="came and went", index=i) for i in range(config.churners)]

    async def churn(fan: Fan) -> None:
        await asyncio.sleep(random.uniform(0, 2.5))
        await fan.follow(stay_s=random.uniform(0.3, 2.0))

    await asyncio.gather(
        *(fan.follow() for fan in stayers),
        *(fan.follow(drops=random.randint(1, 2)) for fan in droppers),
        *(churn(fan) for fan in churners),
        hostile(random.choice(servers), race_id, tally),
    )
    tally.races += 1
    for role, fans in (("stayed", stayers), ("dropped and resumed", droppers), ("came and went", churners)):
        tally.fans[role] += len(fans)
    stored = await asyncio.to_thread(stored_update_count, servers, race_id)
    for fan in stayers + droppers:
        if fan.seqs != list(range(1, stored + 1)):
            missing = len(set(range(1, stored + 1)) - set(fan.seqs))
            tally.lost_updates += missing
            tally.problem(f"race {race_id}: a {fan.role} fan has seqs {fan.seqs} of 1..{stored}")
    for fan in churners:
        if fan.seqs != list(range(fan.seqs[0], fan.seqs[0] + len(fan.seqs))) if fan.seqs else False:
            tally.problem(f"race {race_id}: a fan that came and went saw {fan.seqs}")


async def quiet(servers: list[Server], timeout_s: float = 20) -> None:
    """Wait until no server holds a connection, a watched race or a running simulation."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        healths = [await asyncio.to_thread(s.health) for s in servers]
        if all(h["websocket_connections"] == h["races_watched"] == h["simulations_running"] == 0 for h in healths):
            return
        await asyncio.sleep(0.5)


async def fault(kind: str, servers: list[Server], redis: OwnRedis | None, tally: Tally) -> None:
    await asyncio.sleep(random.uniform(0.8, 2.0))  # mid-race
    if kind == "daphne":
        victim = random.choice(servers)
        victim.kill()
        await asyncio.sleep(1.0)
        await asyncio.to_thread(victim.start)
        tally.faults["Daphne process killed (SIGKILL) and restarted"] += 1
    elif kind == "redis" and redis is not None:
        redis.stop()
        await asyncio.sleep(1.0)
        await asyncio.to_thread(redis.start)
        tally.faults["Redis restarted"] += 1


async def soak(config: SoakConfig, workdir: Path) -> dict:
    raise_file_limit()
    redis = OwnRedis(workdir) if shutil.which("redis-server") else None
    if redis is not None:
        redis.start()
    database = prepare_database(workdir, redis_prefix=f"soak-{uuid.uuid4().hex[:6]}")
    extra = {
        "SIMULATION_ENABLED": "1",
        "SIMULATION_SPEEDUP": str(config.speedup),
        "SIMULATION_HEARTBEAT_S": "0.2",
        "SIMULATION_LEASE_S": "1",
        "LOG_LEVEL": "WARNING",
    }
    if redis is not None:
        extra.update(REDIS_URL=redis.url, CHANNEL_LAYER_PREFIX=database.redis_prefix)
    else:
        extra["REDIS_URL"] = ""
    environment = database.environment(**extra)
    servers = [Server(port=free_port(), environment=environment, log_dir=workdir) for _ in range(2 if redis else 1)]
    tally = Tally()
    started = time.monotonic()
    waves = 0
    resources: dict[str, dict] = {}
    try:
        for server in servers:
            server.start()
        race_cycle = list(RACE_IDS)
        while time.monotonic() - started < config.duration_s:
            wave_races = [race_cycle[(waves * config.parallel_races + i) % len(race_cycle)] for i in range(config.parallel_races)]
            await asyncio.to_thread(reset_races, environment, wave_races)
            faults = []
            if waves % 4 == 1:
                faults.append(fault("daphne", servers, redis, tally))
            elif waves % 4 == 3 and redis is not None:
                faults.append(fault("redis", servers, redis, tally))
            await asyncio.gather(*(run_race(race_id, servers, config, tally) for race_id in wave_races), *faults)
            await quiet(servers)
            for server in servers:
                server.waves_served += 1
                if server.baseline is None and server.waves_served >= 2:
                    server.baseline = await asyncio.to_thread(server.resources)
                if server.baseline is not None:
                    server.rss_mib_samples.append(round(rss_bytes(server.process.pid) / 2**20, 1))
            waves += 1
        await quiet(servers)
        await asyncio.sleep(1.0)
        for server in servers:
            after = await asyncio.to_thread(server.resources)
            resources[f"process on :{server.port}"] = {
                "baseline": server.baseline or after,  # restarted too late in the run for one
                "after": after,
                "rss_mib_samples": server.rss_mib_samples,
            }
    finally:
        for server in servers:
            server.stop()
        if redis is not None:
            redis.stop()
        database.drop()
    for name, measured in resources.items():
        before, after = measured["baseline"], measured["after"]
        for key in ("websocket_connections", "races_watched", "simulations_running", "asyncio_tasks"):
            if after[key] > before[key]:
                tally.problem(f"{name}: {key} {before[key]} -> {after[key]}")
        if after["open_files"] > before["open_files"] + 2:
            tally.problem(f"{name}: open files {before['open_files']} -> {after['open_files']}")
    return {
        "date": dt.date.today().isoformat(),
        "duration_s": round(time.monotonic() - started),
        "config": dataclasses.asdict(config),
        "layer": "Redis (own redis-server)" if redis else "in-memory (one process)",
        "database": "PostgreSQL" if database.url.startswith("postgres") else "SQLite",
        "processes": len(servers),
        "waves": waves,
        **dataclasses.asdict(tally),
        "resources": resources,
    }


def markdown(report: dict) -> str:
    config = report["config"]
    lines = [
        f"Run on {report['date']}: `python -m bench.soak --duration-s {config['duration_s']:g}` for "
        f"{report['duration_s']} s on {report['processes']} Daphne processes, {report['database']}, channel layer "
        f"{report['layer']}; markets sped up {config['speedup']:g}x (a race's 60 s market in "
        f"{60 / config['speedup']:g} s), {config['parallel_races']} races at a time.",
        "",
        "| | |",
        "|---|---|",
        f"| races run | {report['races']} ({report['waves']} waves) |",
        f"| fans | {', '.join(f'{n:,} {role}' for role, n in report['fans'].items())} |",
        f"| updates received and checked (each the one after the last) | {report['updates_checked']:,} |",
        f"| reconnect attempts (some to a server that was down) | {report['reconnects']:,}; resumed without a gap {report['resumed']:,}, refused {report['not_resumed']} |",
        f"| faults injected and survived | {', '.join(f'{kind}: {n}' for kind, n in report['faults'].items())} |",
        f"| bad inputs tried | {sum(report['bad_inputs'].values()):,}, answered as documented {report['bad_inputs_answered']:,} |",
        f"| **updates lost by fans that stayed** | **{report['lost_updates']}** |",
        f"| problems | {len(report['problems'])} |",
        "",
        "Bad inputs, each on a live connection during a race: "
        + ", ".join(f"{name} ({n})" for name, n in report["bad_inputs"].items())
        + ".",
        "",
        "| server process | connections | races watched | simulations | asyncio tasks | open files | RSS | RSS over the run (min / max) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, measured in report["resources"].items():
        before, after = measured["baseline"], measured["after"]
        cells = [f"{before[k]} → {after[k]}" for k in ("websocket_connections", "races_watched", "simulations_running", "asyncio_tasks", "open_files")]
        samples = measured["rss_mib_samples"] or [after["rss_mib"]]
        lines.append(
            f"| {name} (baseline → end) | {' | '.join(cells)} | {before['rss_mib']} → {after['rss_mib']} MiB "
            f"| {min(samples)} / {max(samples)} MiB over {len(samples)} quiet moments |"
        )
    if report["problems"]:
        lines += ["", "Problems:", "", *(f"- {problem}" for problem in report["problems"])]
    return "\n".join(lines)


def write_markdown(path: Path, text: str) -> None:
    document = path.read_text()
    head, rest = document.split(MARKER_START, 1)
    _, tail = rest.split(MARKER_END, 1)
    path.write_text(f"{head}{MARKER_START}\n{text}\n{MARKER_END}{tail}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration-s", type=float, default=600)
    parser.add_argument("--parallel-races", type=int, default=3)
    parser.add_argument("--json", type=Path, help="write the report here")
    parser.add_argument("--markdown", type=Path, help="replace the soak section of this file (docs/reliability.md)")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    random.seed(args.seed)
    config = SoakConfig(duration_s=args.duration_s, parallel_races=args.parallel_races)
    with tempfile.TemporaryDirectory(prefix="soak-") as workdir:
        report = asyncio.run(soak(config, Path(workdir)))
    text = markdown(report)
    print(text)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    if args.markdown:
        write_markdown(args.markdown, text)
    sys.exit(1 if report["problems"] or report["lost_updates"] else 0)


if __name__ == "__main__":
    main()
