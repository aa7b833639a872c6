"""
The soak run: race day after race day for a bounded time against two real Daphne processes
sharing a database and a Redis of the run's own, with fans joining, leaving and dropping their
connection (some with messages still queued), fans that only listen, a client flooding resumes it
never reads, a hostile client throwing bad input, and faults injected (a Daphne process killed and
restarted, Redis restarted). Each race lives its simulated day (scratchings, driver changes, the
close, interim placings, now and then a dead heat or a protest, the official result); now and
then a live feed abandons one mid-market, and the simulation must give way. Every fan that stays
resumes in the URL (``?last_seq=``), as the board does, from 0 on its first connection. Afterwards:

- every fan that stayed for a race (listening only, or subscribing as the spec's examples do) has
  every one of its updates, of every kind, numbered 1..n without a gap or a repeat, ending with the
  official result or the abandonment, n is what the database numbered for that race, and they
  are the same updates for every such fan; each follows from the one before as a race day does
  (tests/race_day.py);
- every fan that came and went (without resuming) saw, on each connection, the race's latest odds
  and placings as it joined, then every later update, consecutively;
- every bad input was answered as docs/protocol.md says;
- each server process is back to its baseline of connections, watched races, simulations,
  unfinished HTTP requests, asyncio tasks and open files, and its memory is reported against its
  baseline.

    python -m bench.soak                                  # 10 minutes; writes docs/reliability.md
    python -m bench.soak --duration-s 30 --json out.json  # a short run, report only

To find out why a run reported a problem, keep what it leaves behind:

    python -m bench.soak --duration-s 240 --keep-workdir /tmp/soak --server-log-level INFO

PATH then keeps each Daphne process's log (daphne-PORT.log, appended to across restarts, its
times in TIME_ZONE), events.log (the run's timeline in UTC: each wave's races, each fault with the
process or Redis it hit, each problem with the fan's server and last seq) and, on PostgreSQL,
race-updates.jsonl (each race's update log as stored when the race was checked: seq, kind,
status, published_at in UTC). The servers' database is still dropped at the end.
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
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import websockets
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from bench.clients import raise_file_limit
from tests.race_day import UPDATE_TYPES, RaceDayWatch
from tests.servers import (
    REPO_DIR,
    DaphneServer,
    OwnRedis,
    ServerDatabase,
    free_port,
    post_json,
    prepare_server_database,
    rss_bytes,
    server_environment,
)

RACE_IDS = list(range(1, 20))  # the fixture race day's nineteen races
MARKER_START, MARKER_END = "<!-- soak:start -->", "<!-- soak:end -->"
DOCUMENTED_CLOSES = {1009, 4429}  # what the hostile client may be closed with (docs/protocol.md)
RACE_TIMEOUT_S = 90
# One race in this many is abandoned by a live feed mid-market (the rest run to their result).
FEED_ABANDONS_ONE_IN = 10
POOLED_CONNECTIONS_SLACK = 8  # how far the Redis and database pools may grow past the baseline


# --- Processes ------------------------------------------------------------------------------


@dataclass
class Server:
    """One of the soak's Daphne processes (tests/servers.py), and what the run keeps of it."""

    daphne: DaphneServer
    # Taken at the first quiet moment after a wave it served (again after a restart): its fan-out
    # tasks, its Redis and database connections are open by then, as they stay.
    baseline: dict | None = None
    waves_served: int = 0
    rss_mib_samples: list[float] = field(default_factory=list)  # at each quiet moment since the baseline

    @property
    def port(self) -> int:
        return self.daphne.port

    @property
    def ws_base(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.daphne.start()
        self.baseline = None
        self.waves_served = 0
        self.rss_mib_samples = []

    def kill(self) -> None:
        self.daphne.kill()

    def stop(self) -> None:
        self.daphne.stop()

    def health(self) -> dict:
        return self.daphne.health()

    def resources(self) -> dict:
        pid = self.daphne.pid
        descriptors = [os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")]
        outbound = outbound_connection_inodes(pid, server_port=self.port)
        pooled = sum(d.startswith("socket:[") and d[8:-1] in outbound for d in descriptors)
        return {
            **{k: v for k, v in self.health().items() if k not in ("status", "degraded")},
            # Connections this process opened to Redis and PostgreSQL live in pools that grow to
            # the highest concurrency seen (channels-redis, redis-py, one database connection per
            # worker thread), so they are counted apart from everything else it holds open.
            "open_files": len(descriptors) - pooled,
            "pooled_connections": pooled,
            "rss_mib": round(rss_bytes(pid) / 2**20, 1),
        }


def outbound_connection_inodes(pid: int, *, server_port: int) -> set[str]:
    """Socket inodes of the TCP connections `pid` opened to other servers (not its clients')."""
    inodes = set()
    for table in ("tcp", "tcp6"):
        try:
            lines = Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            local_port = int(fields[1].rsplit(":", 1)[1], 16)
            remote_port = int(fields[2].rsplit(":", 1)[1], 16)
            if remote_port and local_port != server_port:
                inodes.add(fields[9])
    return inodes


# --- Fans -------------------------------------------------------------------------------------


@dataclass
class Tally:
    fans: dict[str, int] = field(
        default_factory=lambda: {
            "listened only": 0, "stayed and subscribed": 0, "dropped and resumed": 0, "came and went": 0,
            "flooded resumes": 0,
        }
    )  # fmt: skip
    updates_checked: int = 0
    reconnects: int = 0
    resumed: int = 0
    not_resumed: int = 0
    aborted_with_messages_queued: int = 0
    resume_floods: dict[str, int] = field(default_factory=dict)  # how each flooder's connection ended
    problems: list[str] = field(default_factory=list)
    lost_updates: int = 0
    bad_inputs: dict[str, int] = field(default_factory=dict)
    bad_inputs_answered: int = 0
    faults: dict[str, int] = field(
        default_factory=lambda: {"Daphne process killed (SIGKILL) and restarted": 0, "Redis restarted": 0}
    )
    races: int = 0
    # What the races' days held, as the fans saw them.
    race_day: dict[str, int] = field(
        default_factory=lambda: {
            "official": 0, "abandoned by the feed": 0, "scratchings before the market": 0, "late scratchings": 0,
            "driver changes": 0, "dead heats": 0, "protests": 0, "protests upheld": 0,
        }
    )  # fmt: skip

    # Where --keep-workdir writes the run's timeline (events.log); None: nowhere.
    events_path: Path | None = None

    def problem(self, text: str) -> None:
        if len(self.problems) < 50:
            self.problems.append(text)
        self.event(f"problem: {text}")

    def event(self, text: str) -> None:
        """Note what happened when, for --keep-workdir's events.log (to read beside the servers')."""
        if self.events_path is not None:
            at = dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")
            with self.events_path.open("a") as log:
                log.write(f"{at} {text}\n")


class Fan:
    """One phone on a race page: resumes in the URL as the board does (from 0 on its first
    connection, if it stays for the race), checks that each update is the one after the last."""

    def __init__(self, *, race_id: int, servers: list[Server], tally: Tally, role: str, index: int) -> None:
        self.race_id = race_id
        self.servers = servers
        self.tally = tally
        self.role = role
        self.server_index = index % len(servers)
        self.epoch: str | None = None
        self.last_seq: int | None = 0 if role != "came and went" else None  # stayers want everything
        self.seqs: list[int] = []
        self.updates: list[dict] = []  # every update of the race, in order (for fans that stay)
        self.connections: list[list[tuple[int, str]]] = []  # (seq, type) received on each connection
        self.first_initial: dict | None = None
        self.finished = False
        self.sessions = 0

    def url(self, server: Server) -> str:
        url = f"{server.ws_base}/ws/races/{self.race_id}"
        if self.last_seq is not None:
            url += f"?last_seq={self.last_seq}" + (f"&epoch={self.epoch}" if self.epoch else "")
        return url

    async def follow(self, *, stay_s: float | None = None, drops: int = 0) -> None:
        leave_at = time.monotonic() + stay_s if stay_s is not None else None
        drop_at = [time.monotonic() + random.uniform(0.5, 3.0) for _ in range(drops)]
        deadline = time.monotonic() + RACE_TIMEOUT_S
        while not self.finished and time.monotonic() < deadline:
            server = self.servers[self.server_index]
            try:
                async with websockets.connect(
                    self.url(server), open_timeout=5, ping_interval=None, close_timeout=1
                ) as ws:
                    dropped = await self._session(ws, leave_at, drop_at)
                    if not dropped:
                        return
            except (ConnectionClosed, OSError, InvalidHandshake, TimeoutError):
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
        self.first_initial = self.first_initial or first
        self.epoch = first.get("epoch", self.epoch)
        resuming = self.last_seq is not None
        reconnected, self.sessions = self.sessions > 0, self.sessions + 1
        received: list[tuple[int, str]] = []
        self.connections.append(received)
        if resuming:
            answer = json.loads(await asyncio.wait_for(ws.recv(), 10))
            if answer.get("type") != "subscribed":
                self.tally.problem(f"race {self.race_id}: a resume was answered with {str(answer)[:120]}")
            elif answer.get("resumed") is True:
                self.tally.resumed += reconnected
            else:
                self.tally.not_resumed += 1
                self.tally.problem(f"race {self.race_id}: resume after {self.last_seq} refused")
                self.last_seq, self.seqs, self.updates = None, [], []
        if self.role == "stayed and subscribed":
            # As the spec's examples do; the stream is already flowing, and keeps to its order.
            await ws.send(json.dumps({"type": "subscribe", "race_id": self.race_id}))
        while True:
            timeout_s = 15.0
            if leave_at is not None:
                timeout_s = max(0.01, leave_at - time.monotonic())
            if drop_at:
                timeout_s = min(timeout_s, max(0.01, drop_at[0] - time.monotonic()))
            try:
                message = json.loads(await asyncio.wait_for(ws.recv(), timeout_s))
            except TimeoutError:
                if drop_at and time.monotonic() >= drop_at[0]:
                    drop_at.pop(0)
                    # The phone loses its signal mid-conversation: resumes still on their way to
                    # the server, no close frame.
                    for _ in range(5):
                        await ws.send(json.dumps({"type": "subscribe", "race_id": self.race_id, "last_seq": 0}))
                    ws.transport.abort()
                    self.tally.aborted_with_messages_queued += 1
                    return True
                if leave_at is not None and time.monotonic() >= leave_at:
                    return False
                self.tally.event(f"race {self.race_id}: a {self.role} fan on :{self.servers[self.server_index].port} "
                                 f"stalled after seq {self.last_seq} (epoch {self.epoch})")  # fmt: skip
                self.tally.problem(f"race {self.race_id}: a {self.role} fan heard nothing for 15 s")
                return True
            kind = message["type"]
            if kind == "subscribed":
                self.epoch = message["epoch"]
            elif kind in UPDATE_TYPES:
                seq = message["seq"]
                received.append((seq, kind))
                if self.last_seq is not None and seq != self.last_seq + 1:
                    self.tally.problem(f"race {self.race_id}: {self.role} fan got seq {seq} after {self.last_seq}")
                if self.role != "came and went":  # they never resume; joined_then_consecutive checks them
                    self.last_seq = seq
                self.seqs.append(seq)
                if leave_at is None:
                    self.updates.append(message)
                self.tally.updates_checked += 1
                day_over = kind == "result_update" or (kind == "race_status" and message["status"] == "abandoned")
                if day_over and leave_at is None:
                    self.finished = True
                    return False
            elif kind == "error":
                self.tally.problem(f"race {self.race_id}: error {message}")


async def resume_flooder(server: Server, race_id: int, tally: Tally, *, duration_s: float) -> None:
    """A client that asks for the whole race again four times a second (within the rate limit)
    and never reads: it must stay cheap (nothing is replayed twice on one connection) or be
    closed for not reading, and must not slow anyone else."""
    outcome = "still connected at the end"
    try:
        async with websockets.connect(
            f"{server.ws_base}/ws/races/{race_id}", open_timeout=5, max_queue=1, ping_interval=None, close_timeout=1
        ) as ws:
            ends_at = time.monotonic() + duration_s
            while time.monotonic() < ends_at:
                await ws.send(json.dumps({"type": "subscribe", "race_id": race_id, "last_seq": 0}))
                await asyncio.sleep(0.25)
            ws.transport.abort()
    except ConnectionClosed as closed:
        outcome = f"closed {closed.rcvd.code}" if closed.rcvd else "dropped"
    except (OSError, InvalidHandshake, TimeoutError):
        outcome = "its server went"
    tally.resume_floods[outcome] = tally.resume_floods.get(outcome, 0) + 1


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

    async def answer(ws) -> dict:
        """The next message that is not one of the race's updates (those stream meanwhile)."""
        while True:
            reply = json.loads(await asyncio.wait_for(ws.recv(), 5))
            if reply.get("type") not in UPDATE_TYPES:
                return reply

    try:
        async with websockets.connect(url, open_timeout=5, max_size=2**20) as ws:
            await ws.recv()
            for name, frame in BAD_INPUTS:
                await ws.send(frame.replace("RACE", str(race_id)) if isinstance(frame, str) else frame)
                reply = await answer(ws)
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
                except TimeoutError:
                    answered(name, False, "no close")
    except (OSError, ConnectionClosed, InvalidHandshake, TimeoutError):
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
    server_log_level: str = "WARNING"
    keep_workdir: bool = False


def reset_races(environment: dict[str, str], race_ids: list[int]) -> None:
    script = f"from races.services import race_reset\nfor race_id in {race_ids!r}: race_reset(race_id=race_id)"
    subprocess.run(
        [sys.executable, "manage.py", "shell", "-v", "0", "-c", script],
        cwd=REPO_DIR, env={**environment, "LOG_LEVEL": "WARNING"}, check=True,  # the servers' level is theirs
    )  # fmt: skip


def stored_update_count(database: ServerDatabase, race_id: int) -> int:
    """The number of the race's newest update, as the database numbered it: every kind counts."""
    return int(database.scalar("SELECT update_seq FROM races_race WHERE id = ?", race_id))


def stored_updates(database: ServerDatabase, race_id: int) -> list[dict]:
    """The race's update log as stored (for --keep-workdir): when each update was made, and what."""
    rows = database.scalar(
        "SELECT json_agg(json_build_object('seq', seq, 'kind', kind, 'status', data->>'status', "
        "'published_at', published_at) ORDER BY seq) FROM races_raceupdate WHERE race_id = ?",
        race_id,
    )
    return json.loads(rows) if isinstance(rows, str) else rows or []


async def feed_abandons(servers: list[Server], race_id: int, token: str, tally: Tally) -> None:
    """A live feed abandons the race mid-market, through the API of whichever server answers."""
    await asyncio.sleep(random.uniform(0.8, 2.0))
    body = {"status": "abandoned", "reason": "Soak: the feed abandoned the race"}
    for attempt in range(40):
        server = servers[attempt % len(servers)]
        try:
            status, answer = await asyncio.to_thread(
                post_json, f"http://127.0.0.1:{server.port}/api/races/{race_id}/status/", body, token
            )
        except OSError:
            await asyncio.sleep(0.25)  # its server is restarting after a fault
            continue
        if status not in (200, 201, 409):  # 409: the race's day was over already
            tally.problem(f"race {race_id}: the feed's abandonment was answered {status} {answer}")
        return


def race_day_checked(race_id: int, stayers: list[Fan], tally: Tally) -> None:
    """Check that every fan who stayed saw the same updates, each following from the last as a
    race day does, and count what the day held."""
    reference = stayers[0]
    if reference.first_initial is None:
        return  # it never connected: reported already
    watch = RaceDayWatch.from_the_start(reference.first_initial).see_all(reference.updates)
    for problem in watch.problems[:3]:
        tally.problem(f"race {race_id}: {problem}")
    for fan in stayers[1:]:
        if fan.updates != reference.updates:
            tally.problem(f"race {race_id}: a {fan.role} fan's updates differ from a {reference.role} fan's")
    day = tally.race_day
    day["official"] += watch.official is not None
    day["abandoned by the feed"] += watch.status == "abandoned"
    day["scratchings before the market"] += sum(not late for _, late in watch.scratchings)
    day["late scratchings"] += sum(late for _, late in watch.scratchings)
    day["driver changes"] += len(watch.driver_changes)
    day["dead heats"] += watch.dead_heat
    day["protests"] += len(watch.protests)
    day["protests upheld"] += watch.protest_upheld


async def run_race(
    race_id: int,
    servers: list[Server],
    config: SoakConfig,
    tally: Tally,
    database: ServerDatabase,
    feed_token: str | None = None,
) -> None:
    def fans(role: str, count: int) -> list[Fan]:
        return [Fan(race_id=race_id, servers=servers, tally=tally, role=role, index=i) for i in range(count)]

    listeners = fans("listened only", config.stayers // 2)
    subscribers = fans("stayed and subscribed", config.stayers - config.stayers // 2)
    droppers = fans("dropped and resumed", config.droppers)
    churners = fans("came and went", config.churners)

    async def churn(fan: Fan) -> None:
        await asyncio.sleep(random.uniform(0, 2.5))
        await fan.follow(stay_s=random.uniform(0.3, 2.0))

    await asyncio.gather(
        *(fan.follow() for fan in listeners + subscribers),
        *(fan.follow(drops=random.randint(1, 2)) for fan in droppers),
        *(churn(fan) for fan in churners),
        hostile(random.choice(servers), race_id, tally),
        resume_flooder(random.choice(servers), race_id, tally, duration_s=2.5),
        *([feed_abandons(servers, race_id, feed_token, tally)] if feed_token else []),
    )
    tally.races += 1
    for group in (listeners, subscribers, droppers, churners):
        tally.fans[group[0].role] += len(group)
    tally.fans["flooded resumes"] += 1
    race_day_checked(race_id, listeners + subscribers + droppers, tally)
    stored = await asyncio.to_thread(stored_update_count, database, race_id)
    if tally.events_path is not None and database.url.startswith("postgres"):
        log = await asyncio.to_thread(stored_updates, database, race_id)
        with (tally.events_path.parent / "race-updates.jsonl").open("a") as kept:
            kept.write(json.dumps({"race_id": race_id, "updates": log}) + "\n")
    for fan in listeners + subscribers + droppers:
        if fan.seqs != list(range(1, stored + 1)):
            missing = len(set(range(1, stored + 1)) - set(fan.seqs))
            tally.lost_updates += missing
            tally.problem(f"race {race_id}: a {fan.role} fan has seqs {fan.seqs} of 1..{stored}")
    for fan in churners:
        for received in fan.connections:
            if not joined_then_consecutive(received):
                tally.problem(f"race {race_id}: a fan that came and went saw {received}")


def joined_then_consecutive(received: list[tuple[int, str]]) -> bool:
    """Whether one connection of a fan that does not resume got what docs/protocol.md promises:
    on joining, the latest odds and the latest placings (each may be older than its
    initial_state, which has every update up to the join: statuses and scratchings need no
    message of their own), then every later update, one after the other."""
    joined = 0
    if joined < len(received) and received[joined][1] == "odds_update":
        joined += 1
    if joined < len(received) and received[joined][1] in ("interim_result", "result_update"):
        joined += 1
    seqs = [seq for seq, _ in received]
    increasing = all(a < b for a, b in zip(seqs, seqs[1:], strict=False))
    live = seqs[joined:]
    return increasing and live == list(range(live[0], live[0] + len(live))) if live else increasing


async def quiet(servers: list[Server], timeout_s: float = 20) -> None:
    """Wait until no server holds a connection, a watched race or a running simulation."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        healths = [await asyncio.to_thread(s.health) for s in servers]
        if all(
            h["websocket_connections"]
            == h["races_watched"]
            == h["simulations_running"]
            == h["http_requests_pending"]
            == 0
            for h in healths
        ):
            return
        await asyncio.sleep(0.5)


async def fault(kind: str, servers: list[Server], redis: OwnRedis | None, tally: Tally) -> None:
    await asyncio.sleep(random.uniform(0.8, 2.0))  # mid-race
    if kind == "daphne":
        victim = random.choice(servers)
        tally.event(f"fault: killing the Daphne process on :{victim.port} (pid {victim.daphne.pid})")
        victim.kill()
        await asyncio.sleep(1.0)
        await asyncio.to_thread(victim.start)
        tally.event(f"fault: the Daphne process on :{victim.port} is back (pid {victim.daphne.pid})")
        tally.faults["Daphne process killed (SIGKILL) and restarted"] += 1
    elif kind == "redis" and redis is not None:
        tally.event("fault: killing Redis")
        redis.stop()
        await asyncio.sleep(1.0)
        await asyncio.to_thread(redis.start)
        tally.event("fault: Redis is back")
        tally.faults["Redis restarted"] += 1


async def soak(config: SoakConfig, workdir: Path) -> dict:
    raise_file_limit()
    redis = OwnRedis(workdir) if shutil.which("redis-server") else None
    if redis is not None:
        redis.start()
    database = prepare_server_database(workdir, name_prefix="racing_soak")
    redis_prefix = f"soak-{uuid.uuid4().hex[:6]}"
    extra = {
        "SIMULATION_ENABLED": "1",
        "SIMULATION_SPEEDUP": str(config.speedup),
        "SIMULATION_HEARTBEAT_S": "0.2",
        "SIMULATION_LEASE_S": "1",
        "LOG_LEVEL": config.server_log_level,
    }
    if redis is not None:
        extra.update(REDIS_URL=redis.url, CHANNEL_LAYER_PREFIX=redis_prefix)
    else:
        extra["REDIS_URL"] = ""
    environment = server_environment(database, **extra)
    servers = []
    for _ in range(2 if redis else 1):
        port = free_port()
        daphne = DaphneServer(port=port, log_path=workdir / f"daphne-{port}.log", database=database,
                              environment=environment, extra_args=["-v", "0"])  # fmt: skip
        servers.append(Server(daphne=daphne))
    tally = Tally(events_path=workdir / "events.log" if config.keep_workdir else None)
    feed_token = database.feed_token(username="soak-feed")
    started = time.monotonic()
    waves = 0
    races_started = 0
    resources: dict[str, dict] = {}
    try:
        for server in servers:
            server.start()
        race_cycle = list(RACE_IDS)
        while time.monotonic() - started < config.duration_s:
            wave_races = [
                race_cycle[(waves * config.parallel_races + i) % len(race_cycle)] for i in range(config.parallel_races)
            ]
            await asyncio.to_thread(reset_races, environment, wave_races)
            tally.event(f"wave {waves}: races {wave_races}")
            faults = []
            if waves % 4 == 1:
                faults.append(fault("daphne", servers, redis, tally))
            elif waves % 4 == 3 and redis is not None:
                faults.append(fault("redis", servers, redis, tally))
            abandoned_by_feed = [(races_started + i) % FEED_ABANDONS_ONE_IN == 5 for i in range(len(wave_races))]
            races_started += len(wave_races)
            await asyncio.gather(
                *(
                    run_race(race_id, servers, config, tally, database, feed_token if abandoned else None)
                    for race_id, abandoned in zip(wave_races, abandoned_by_feed, strict=True)
                ),
                *faults,
            )
            await quiet(servers)
            for server in servers:
                server.waves_served += 1
                if server.baseline is None and server.waves_served >= 2:
                    server.baseline = await asyncio.to_thread(server.resources)
                if server.baseline is not None:
                    server.rss_mib_samples.append(round(rss_bytes(server.daphne.pid) / 2**20, 1))
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
        for key in (
            "websocket_connections",
            "races_watched",
            "simulations_running",
            "http_requests_pending",
            "asyncio_tasks",
        ):
            if after[key] > before[key]:
                tally.problem(f"{name}: {key} {before[key]} -> {after[key]}")
        if after["open_files"] > before["open_files"] + 2:
            tally.problem(f"{name}: open files {before['open_files']} -> {after['open_files']}")
        # A pool that leaks grows with every wave; one that only grew to a busier moment's
        # concurrency (after a Redis restart, say) stays within a few of where it was.
        if after["pooled_connections"] > before.get("pooled_connections", 0) + POOLED_CONNECTIONS_SLACK:
            tally.problem(
                f"{name}: connections to Redis and PostgreSQL "
                f"{before.get('pooled_connections', 0)} -> {after['pooled_connections']}"
            )
    return {
        "date": dt.date.today().isoformat(),
        "duration_s": round(time.monotonic() - started),
        "config": dataclasses.asdict(config),
        "layer": "Redis (own redis-server)" if redis else "in-memory (one process)",
        "database": "PostgreSQL" if database.url.startswith("postgres") else "SQLite",
        "processes": len(servers),
        "waves": waves,
        **{key: value for key, value in dataclasses.asdict(tally).items() if key != "events_path"},
        "resources": resources,
    }


def markdown(report: dict) -> str:
    config = report["config"]
    lines = [
        f"Run on {report['date']}: `python -m bench.soak --duration-s {config['duration_s']:g}` for "
        f"{report['duration_s']} s on {report['processes']} Daphne processes, {report['database']}, channel layer "
        f"{report['layer']}; race days sped up {config['speedup']:g}x (a race's 60 s market in "
        f"{60 / config['speedup']:g} s, its whole day in about {80 / config['speedup']:g} s), "
        f"{config['parallel_races']} races at a time, one in {FEED_ABANDONS_ONE_IN} abandoned by a live feed mid-market.",
        "",
        "| | |",
        "|---|---|",
        f"| races run | {report['races']} ({report['waves']} waves) |",
        f"| what the race days held | {', '.join(f'{n:,} {what}' for what, n in report['race_day'].items())} |",
        f"| fans | {', '.join(f'{n:,} {role}' for role, n in report['fans'].items())} |",
        f"| updates received and checked (each the one after the last) | {report['updates_checked']:,} |",
        f"| reconnect attempts (some to a server that was down) | {report['reconnects']:,}; resumed in the URL without a gap {report['resumed']:,}, refused {report['not_resumed']} |",
        f"| connections dropped with resumes still queued | {report['aborted_with_messages_queued']:,} |",
        f"| resume flooders (4 a second, never reading) | {', '.join(f'{n} {outcome}' for outcome, n in report['resume_floods'].items())} |",
        f"| faults injected and survived | {', '.join(f'{kind}: {n}' for kind, n in report['faults'].items())} |",
        f"| bad inputs tried | {sum(report['bad_inputs'].values()):,}, answered as documented {report['bad_inputs_answered']:,} |",
        f"| **updates lost by fans that stayed** | **{report['lost_updates']}** |",
        f"| problems | {len(report['problems'])} |",
        "",
        "Bad inputs, each on a live connection during a race: "
        + ", ".join(f"{name} ({n})" for name, n in report["bad_inputs"].items())
        + ".",
        "",
        "| server process | connections | races watched | simulations | unfinished HTTP requests | asyncio tasks | open files | connections to Redis and PostgreSQL | RSS | RSS over the run (min / max) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, measured in report["resources"].items():
        before, after = measured["baseline"], measured["after"]
        keys = (
            "websocket_connections",
            "races_watched",
            "simulations_running",
            "http_requests_pending",
            "asyncio_tasks",
            "open_files",
            "pooled_connections",
        )
        cells = [f"{before.get(k, 0)} → {after[k]}" for k in keys]
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
    parser.add_argument(
        "--keep-workdir", type=Path, metavar="PATH",
        help="run in PATH and keep it: the servers' logs, events.log and race-updates.jsonl (see above)",
    )  # fmt: skip
    parser.add_argument("--server-log-level", default="WARNING", help="the Daphne processes' LOG_LEVEL")
    args = parser.parse_args()
    random.seed(args.seed)
    config = SoakConfig(
        duration_s=args.duration_s,
        parallel_races=args.parallel_races,
        server_log_level=args.server_log_level,
        keep_workdir=args.keep_workdir is not None,
    )
    if args.keep_workdir is not None:
        args.keep_workdir.mkdir(parents=True, exist_ok=True)
        report = asyncio.run(soak(config, args.keep_workdir))
    else:
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
