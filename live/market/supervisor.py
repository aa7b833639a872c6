"""
Exactly one simulation per race, started by its first viewer anywhere and stopped soon after its
last viewer anywhere leaves.

Each server process keeps a ``SimulationSupervisor`` (one per event loop) that counts its own
viewers per race and, every heartbeat, reconciles with the other processes through a
coordinator: in one process the ``LocalCoordinator``; with Redis the ``RedisCoordinator``, where
viewers are published as expiring presence entries and the right to simulate a race is an
expiring lease. Nothing counts up and down in Redis, so a process that crashes leaks nothing:
its presence entries lapse and its leases are taken over once they expire.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import os
import socket
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Protocol
from weakref import WeakKeyDictionary

from django.conf import settings

from live.market.race_day import NOTHING_FORCED, Forced
from live.market.simulation import SimulationOutcome, SimulationTiming, Update, race_simulation_run

logger = logging.getLogger(__name__)

# While the heartbeat keeps failing (Redis away), it tries at most this far apart.
HEARTBEAT_BACKOFF_MAX_S = 5.0


def process_identity() -> str:
    """Return a name for this process that is unique across hosts and restarts."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class Coordinator(Protocol):
    identity: str

    async def publish_presence(self, *, watched: set[int], unwatched: set[int]) -> None: ...
    async def viewers_anywhere(self, race_id: int) -> bool: ...
    async def lease_acquire(self, race_id: int) -> bool: ...
    async def lease_take(self, race_id: int) -> bool: ...
    async def lease_renew(self, race_id: int) -> bool: ...
    async def lease_release(self, race_id: int) -> None: ...
    async def close(self) -> None: ...


class LocalCoordinator:
    """One process is the whole deployment (the in-memory channel layer)."""

    def __init__(self) -> None:
        self.identity = process_identity()
        self.watched: set[int] = set()
        self.leases: set[int] = set()

    async def publish_presence(self, *, watched: set[int], unwatched: set[int]) -> None:
        self.watched = set(watched)

    async def viewers_anywhere(self, race_id: int) -> bool:
        return race_id in self.watched

    async def lease_acquire(self, race_id: int) -> bool:
        if race_id in self.leases:
            return False
        self.leases.add(race_id)
        return True

    async def lease_take(self, race_id: int) -> bool:
        self.leases.add(race_id)
        return True

    async def lease_renew(self, race_id: int) -> bool:
        return race_id in self.leases

    async def lease_release(self, race_id: int) -> None:
        self.leases.discard(race_id)

    async def close(self) -> None:
        pass


# Renew or release a lease only while this process still holds it.
_RENEW_IF_HELD = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('pexpire', KEYS[1], ARGV[2])
end
return 0
"""
_RELEASE_IF_HELD = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('del', KEYS[1])
end
return 0
"""


class RedisCoordinator:
    """Several processes share races through Redis: presence entries and leases that expire."""

    def __init__(self, *, redis_url: str, prefix: str, lease_s: float, presence_ttl_s: float) -> None:
        import redis.asyncio

        self.identity = process_identity()
        self.redis = redis.asyncio.Redis.from_url(redis_url)
        self.prefix = prefix
        self.lease_ms = int(lease_s * 1000)
        self.presence_ttl_ms = int(presence_ttl_s * 1000)
        self._renew = self.redis.register_script(_RENEW_IF_HELD)
        self._release = self.redis.register_script(_RELEASE_IF_HELD)

    def lease_key(self, race_id: int) -> str:
        return f"{self.prefix}:simulation:lease:{race_id}"

    def viewers_key(self, race_id: int) -> str:
        return f"{self.prefix}:simulation:viewers:{race_id}"

    async def publish_presence(self, *, watched: set[int], unwatched: set[int]) -> None:
        expires_at_ms = int(time.time() * 1000) + self.presence_ttl_ms
        async with self.redis.pipeline(transaction=False) as pipe:
            for race_id in watched:
                pipe.zadd(self.viewers_key(race_id), {self.identity: expires_at_ms})
                # The sorted set itself goes once nobody refreshes it.
                pipe.pexpire(self.viewers_key(race_id), self.presence_ttl_ms * 2)
            for race_id in unwatched:
                pipe.zrem(self.viewers_key(race_id), self.identity)
            await pipe.execute()

    async def viewers_anywhere(self, race_id: int) -> bool:
        now_ms = int(time.time() * 1000)
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.zremrangebyscore(self.viewers_key(race_id), "-inf", now_ms)
            pipe.zcard(self.viewers_key(race_id))
            _, count = await pipe.execute()
        return count > 0

    async def lease_acquire(self, race_id: int) -> bool:
        return bool(await self.redis.set(self.lease_key(race_id), self.identity, nx=True, px=self.lease_ms))

    async def lease_renew(self, race_id: int) -> bool:
        return bool(await self._renew(keys=[self.lease_key(race_id)], args=[self.identity, self.lease_ms]))

    async def lease_release(self, race_id: int) -> None:
        await self._release(keys=[self.lease_key(race_id)], args=[self.identity])

    async def lease_take(self, race_id: int) -> bool:
        """Take the race's lease whoever holds it (an operator's explicit command wins)."""
        return bool(await self.redis.set(self.lease_key(race_id), self.identity, px=self.lease_ms))

    async def close(self) -> None:
        await self.redis.aclose()


def coordinator_from_settings() -> Coordinator:
    if settings.REDIS_URL:
        return RedisCoordinator(
            redis_url=settings.REDIS_URL,
            prefix=settings.CHANNEL_LAYER_PREFIX,
            lease_s=settings.SIMULATION_LEASE_S,
            presence_ttl_s=settings.SIMULATION_PRESENCE_TTL_S,
        )
    return LocalCoordinator()


RunSimulation = Callable[[int, Callable[[], Awaitable[bool]]], Awaitable[SimulationOutcome]]


def _run_from_settings(race_id: int, still_leading: Callable[[], Awaitable[bool]]) -> Awaitable[SimulationOutcome]:
    # No seed: the race's day is planned from its epoch, so whichever process resumes it plans
    # the same day.
    return race_simulation_run(race_id=race_id, timing=SimulationTiming.from_settings(), still_leading=still_leading)


class SimulationSupervisor:
    """This process's part in running each watched race's simulation exactly once."""

    def __init__(
        self,
        *,
        coordinator: Coordinator,
        heartbeat_s: float,
        stop_after_s: float,
        run_simulation: RunSimulation = _run_from_settings,
    ) -> None:
        self.coordinator = coordinator
        self.heartbeat_s = heartbeat_s
        # A viewer who just arrived in another process shows in Redis only at that process's
        # next heartbeat, so a race stops only once it has had no viewers for this long.
        self.stop_after_s = stop_after_s
        self._unwatched_since: dict[int, float] = {}
        self.run_simulation = run_simulation
        self.viewers: Counter[int] = Counter()
        # Races started from the admin: run to their result whether or not anyone watches.
        self.pinned: set[int] = set()
        self.simulations: dict[int, asyncio.Task[SimulationOutcome]] = {}
        # Races found finished (or with nothing to run) are not started again until a viewer
        # arrives who was told the race is not finished (after a reset, say).
        self.settled: set[int] = set()
        self._presence: set[int] = set()
        self._wake = asyncio.Event()
        self._loop_task: asyncio.Task[None] | None = None
        self._closing = False

    # --- Called by consumers (never block, never raise) ---------------------------------------

    def viewer_joined(self, race_id: int) -> None:
        self.viewers[race_id] += 1
        self.settled.discard(race_id)
        self._poke()

    def race_pin(self, race_id: int) -> None:
        """Run the race's market to its result even with no viewers (the admin's start)."""
        self.pinned.add(race_id)
        self.settled.discard(race_id)
        self._poke()

    def viewer_left(self, race_id: int) -> None:
        self.viewers[race_id] -= 1
        if self.viewers[race_id] <= 0:
            del self.viewers[race_id]
        self._poke()

    def _poke(self) -> None:
        if self._closing:
            return
        if self._loop_task is None or self._loop_task.done():
            # A fresh context: the heartbeat (and the simulations it starts) must not inherit
            # the caller's, e.g. an admin request's, whose asgiref executor state would make
            # every database call of the simulation refuse to run ("would deadlock").
            self._loop_task = asyncio.get_running_loop().create_task(self._run_forever(), context=contextvars.Context())
        self._wake.set()

    # --- The heartbeat ------------------------------------------------------------------------

    async def _run_forever(self) -> None:
        failures = 0  # in a row: the traceback is logged once, and the beat slows while it lasts
        while not self._closing:
            try:
                await self.reconcile()
                if failures:
                    logger.info("Simulation heartbeat works again after %s failures", failures)
                failures = 0
            except asyncio.CancelledError:
                raise
            except Exception as error:  # Redis restarting, say: keep serving, try again
                failures += 1
                if failures == 1:
                    logger.exception("Simulation heartbeat failed; retrying")
                else:
                    logger.warning("Simulation heartbeat failed again (%s)", error)
            if not self.viewers and not self.pinned and not self.simulations and not self._presence:
                self._loop_task = None
                return
            # Up to the lease's length between tries while Redis is away: no point hammering it,
            # and no lease outlives a slower beat for long.
            beat_s = min(self.heartbeat_s * 2 ** max(0, failures - 1), max(self.heartbeat_s, HEARTBEAT_BACKOFF_MAX_S))
            # asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow a cancellation
            # that lands as the wait completes, and the heartbeat would carry on.
            try:
                async with asyncio.timeout(beat_s):
                    await self._wake.wait()
            except TimeoutError:
                pass
            self._wake.clear()

    async def reconcile(self) -> None:
        """Publish this process's viewers, stop what should stop, start what should start."""
        watched = set(self.viewers) | self.pinned
        await self.coordinator.publish_presence(watched=watched, unwatched=self._presence - watched)
        self._presence = watched
        for race_id, task in list(self.simulations.items()):
            if task.done():
                await self._finished(race_id, task)
            elif not await self.coordinator.lease_renew(race_id):
                logger.warning("Race %s: lease lost, another process runs it now", race_id)
                await self._stop(race_id)
            elif await self.coordinator.viewers_anywhere(race_id):
                self._unwatched_since.pop(race_id, None)
            elif time.monotonic() - self._unwatched_since.setdefault(race_id, time.monotonic()) >= self.stop_after_s:
                logger.info("Race %s: no viewers left anywhere, stopping its simulation", race_id)
                await self._stop(race_id)
                await self.coordinator.lease_release(race_id)
        for race_id in watched - self.simulations.keys() - self.settled:
            # A race started from the admin is taken from whoever runs it, like simulate_race.
            take = self.coordinator.lease_take if race_id in self.pinned else self.coordinator.lease_acquire
            if await take(race_id):
                logger.info("Race %s: starting its simulation in %s", race_id, self.coordinator.identity)
                self.simulations[race_id] = asyncio.get_running_loop().create_task(
                    self.run_simulation(race_id, self._still_leading(race_id))
                )

    def _still_leading(self, race_id: int) -> Callable[[], Awaitable[bool]]:
        async def still_leading() -> bool:
            # Shielded: stopping the simulation must not cancel a Redis command midway (the
            # client then stalls for seconds tearing the connection down).
            return await asyncio.shield(self.coordinator.lease_renew(race_id))

        return still_leading

    async def _finished(self, race_id: int, task: asyncio.Task[SimulationOutcome]) -> None:
        del self.simulations[race_id]
        self._unwatched_since.pop(race_id, None)
        self.pinned.discard(race_id)
        if task.cancelled():
            return
        if task.exception() is not None:
            logger.error("Race %s: simulation failed", race_id, exc_info=task.exception())
        elif task.result() in (SimulationOutcome.FINISHED, SimulationOutcome.NOTHING_TO_RUN):
            self.settled.add(race_id)
        await self.coordinator.lease_release(race_id)

    async def _stop(self, race_id: int) -> None:
        self._unwatched_since.pop(race_id, None)
        task = self.simulations.pop(race_id)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    async def shutdown(self) -> None:
        """Stop every simulation and the heartbeat, giving up leases and presence."""
        # The heartbeat is asked to stop rather than cancelled: a Redis command cancelled midway
        # can hold the shutdown up for seconds while the client tears its connection down.
        self._closing = True
        self._wake.set()
        if self._loop_task is not None:
            try:
                await asyncio.wait_for(self._loop_task, timeout=self.heartbeat_s + 5)
            except Exception:
                logger.exception("Simulation heartbeat did not stop cleanly")
            self._loop_task = None
        for race_id in list(self.simulations):
            await self._stop(race_id)
            await self.coordinator.lease_release(race_id)
        try:
            await self.coordinator.publish_presence(watched=set(), unwatched=self._presence)
        finally:
            await self.coordinator.close()


_supervisors: WeakKeyDictionary[asyncio.AbstractEventLoop, SimulationSupervisor] = WeakKeyDictionary()


def simulation_supervisor() -> SimulationSupervisor:
    """Return this event loop's supervisor (a server process has one loop, so one supervisor)."""
    loop = asyncio.get_running_loop()
    supervisor = _supervisors.get(loop)
    if supervisor is None:
        supervisor = SimulationSupervisor(
            coordinator=coordinator_from_settings(),
            heartbeat_s=settings.SIMULATION_HEARTBEAT_S,
            stop_after_s=settings.SIMULATION_PRESENCE_TTL_S,
        )
        _supervisors[loop] = supervisor
    return supervisor


def simulation_viewers() -> SimulationSupervisor | None:
    """Return whom live.protocol.presence tells of viewers: this loop's supervisor, or no one
    while simulation is turned off (SIMULATION_ENABLED)."""
    return simulation_supervisor() if settings.SIMULATION_ENABLED else None


def simulations_running() -> int:
    """Return how many races' simulations this event loop runs (0 before the first viewer)."""
    supervisor = _supervisors.get(asyncio.get_running_loop())
    return len(supervisor.simulations) if supervisor is not None else 0


async def simulation_supervisor_shutdown() -> None:
    """Shut down this event loop's supervisor, if it has one."""
    supervisor = _supervisors.pop(asyncio.get_running_loop(), None)
    if supervisor is not None:
        await supervisor.shutdown()


async def race_simulation_take_over(
    *,
    race_id: int,
    timing: SimulationTiming,
    seed: int | None = None,
    forced: Forced = NOTHING_FORCED,
    on_update: Callable[[Update], None] | None = None,
) -> SimulationOutcome:
    """
    Run a race's simulation here and now, taking its lease from any server process that runs it
    (that process stops at its next heartbeat) and holding it until the race is run.
    """
    coordinator = coordinator_from_settings()
    if not isinstance(coordinator, RedisCoordinator):
        raise RuntimeError("taking over a race's simulation needs REDIS_URL")
    await coordinator.lease_take(race_id)

    async def keep_lease() -> None:
        while await coordinator.lease_renew(race_id):
            await asyncio.sleep(settings.SIMULATION_HEARTBEAT_S)

    keeper = asyncio.get_running_loop().create_task(keep_lease())
    try:
        return await race_simulation_run(
            race_id=race_id,
            timing=timing,
            seed=seed,
            forced=forced,
            still_leading=lambda: coordinator.lease_renew(race_id),
            on_update=on_update,
        )
    finally:
        keeper.cancel()
        await asyncio.gather(keeper, return_exceptions=True)
        await coordinator.lease_release(race_id)
        await coordinator.close()
