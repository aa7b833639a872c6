"""
How many connections watch each race, across every server process, refreshed once a second: the
``viewers`` of a race's summary (live/protocol/summaries.py).

A process counts its own: the connections in its fan-out that stream the race (``/ws/races/{id}``
or a race followed on ``/ws/live``; a meeting's board watches summaries, not the race). With
Redis, each process writes its counts, whole, every second, under a key of its own that expires
within seconds, and reads the others': nothing is counted up and down, so a process that crashes
leaves no phantom viewers, its counts lapse with its key. (The simulated market's presence
entries, in live/market, say only whether a race has viewers anywhere, and only for races whose
market runs; this package may not read them.)
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Protocol
from weakref import WeakKeyDictionary

from django.conf import settings

from live.protocol.fanout import RaceFanout, race_fanout

logger = logging.getLogger(__name__)

AUDIENCE_INTERVAL_S = 1.0
# A process's counts outlive it by this much at most: three missed refreshes.
AUDIENCE_TTL_S = 3 * AUDIENCE_INTERVAL_S


class AudienceStore(Protocol):
    async def publish(self, counts: Counter[int]) -> None:
        """Publish this process's counts, whole (an empty one withdraws them)."""

    async def totals(self, race_ids: Iterable[int]) -> dict[int, int]:
        """Return each race's viewers across every live process."""

    async def close(self) -> None: ...


class LocalAudienceStore:
    """One process is the whole deployment (the in-memory channel layer)."""

    def __init__(self) -> None:
        self.counts: Counter[int] = Counter()

    async def publish(self, counts: Counter[int]) -> None:
        self.counts = Counter(counts)

    async def totals(self, race_ids: Iterable[int]) -> dict[int, int]:
        return {race_id: self.counts.get(race_id, 0) for race_id in race_ids}

    async def close(self) -> None:
        pass


class RedisAudienceStore:
    """Each process's counts in a hash of its own that expires; the live processes in a sorted set
    scored by when their counts expire."""

    def __init__(self, *, redis_url: str, prefix: str, identity: str, ttl_s: float) -> None:
        import redis.asyncio

        self.redis = redis.asyncio.Redis.from_url(redis_url)
        self.identity = identity
        self.processes_key = f"{prefix}:audience:processes"
        self.ttl_ms = int(ttl_s * 1000)

    def counts_key(self, identity: str) -> str:
        return f"{self.processes_key.rsplit(':', 1)[0]}:counts:{identity}"

    async def publish(self, counts: Counter[int]) -> None:
        key = self.counts_key(self.identity)
        now_ms = int(time.time() * 1000)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.delete(key)
            if counts:
                pipe.hset(key, mapping={str(race_id): count for race_id, count in counts.items()})
                pipe.pexpire(key, self.ttl_ms)
                pipe.zadd(self.processes_key, {self.identity: now_ms + self.ttl_ms})
            else:
                pipe.zrem(self.processes_key, self.identity)
            pipe.zremrangebyscore(self.processes_key, "-inf", now_ms)
            pipe.pexpire(self.processes_key, self.ttl_ms * 2)
            await pipe.execute()

    async def totals(self, race_ids: Iterable[int]) -> dict[int, int]:
        races = sorted(set(race_ids))
        if not races:
            return {}
        now_ms = int(time.time() * 1000)
        identities = await self.redis.zrangebyscore(self.processes_key, now_ms, "+inf")
        totals = dict.fromkeys(races, 0)
        if not identities:
            return totals
        async with self.redis.pipeline(transaction=False) as pipe:
            for identity in identities:
                name = identity.decode() if isinstance(identity, bytes) else str(identity)
                pipe.hmget(self.counts_key(name), [str(race_id) for race_id in races])
            for counts in await pipe.execute():
                for race_id, count in zip(races, counts, strict=True):
                    totals[race_id] += int(count or 0)
        return totals

    async def close(self) -> None:
        await self.redis.aclose()


def audience_store_from_settings(identity: str) -> AudienceStore:
    if settings.REDIS_URL:
        return RedisAudienceStore(
            redis_url=settings.REDIS_URL, prefix=settings.CHANNEL_LAYER_PREFIX, identity=identity, ttl_s=AUDIENCE_TTL_S
        )
    return LocalAudienceStore()


class Audience:
    """This process's part in the viewer counts: it publishes its own every second while it has
    any (and once more, empty, when they are gone), and keeps the totals of the races someone here
    wants them for, telling ``on_change`` of each race whose total changed."""

    def __init__(self, fanout: RaceFanout, store: AudienceStore) -> None:
        self.fanout = fanout
        self.store = store
        self.wanted: Callable[[], set[int]] = set
        self.on_change: Callable[[int], None] = lambda race_id: None
        self.totals: dict[int, int] = {}
        self._published: Counter[int] = Counter()
        self._task: asyncio.Task[None] | None = None

    def local_counts(self) -> Counter[int]:
        """Return this process's viewers of each race: the connections streaming it."""
        return Counter({race_id: count for race_id in self.fanout.subscribers if (count := self.local_count(race_id))})

    def local_count(self, race_id: int) -> int:
        """Return this process's viewers of one race."""
        return sum(1 for s in self.fanout.subscribers.get(race_id, ()) if getattr(s, "counts_as_viewer", False))

    def total(self, race_id: int) -> int:
        """Return the race's viewers as last counted (this process's own until then: counted
        for this race alone, since joiners in a storm ask for each of their races)."""
        if race_id in self.totals:
            return self.totals[race_id]
        return self.local_count(race_id)

    def wake(self) -> None:
        """Count from now on (a viewer joined, or someone here wants totals)."""
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        failures = 0
        while True:
            counts, wanted = self.local_counts(), self.wanted()
            if not counts and not self._published and not wanted:
                self.totals.clear()
                return
            try:
                if counts or self._published:
                    await self.store.publish(counts)
                    self._published = counts
                totals = await self.store.totals(wanted)
                failures = 0
            except asyncio.CancelledError:
                raise
            except Exception as error:
                failures += 1
                # Redis away: the counts are stale, not wrong for long; the next round puts them right.
                if failures == 1:
                    logger.warning("Counting viewers failed (%s); retrying", error)
            else:
                for race_id in sorted(wanted):
                    # Until its first count a race's total was this process's own (total()).
                    previous = self.totals.get(race_id, counts.get(race_id, 0))
                    self.totals[race_id] = totals[race_id]
                    if previous != totals[race_id]:
                        self.on_change(race_id)
                for race_id in set(self.totals) - wanted:
                    del self.totals[race_id]
            await asyncio.sleep(AUDIENCE_INTERVAL_S)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        try:
            if self._published:
                await self.store.publish(Counter())
        except Exception:
            logger.warning("Withdrawing this process's viewer counts failed; they lapse in %s s", AUDIENCE_TTL_S)
        await self.store.close()


_audiences: WeakKeyDictionary[asyncio.AbstractEventLoop, Audience] = WeakKeyDictionary()


def audience() -> Audience:
    """Return this event loop's audience (a server process has one loop, so one)."""
    loop = asyncio.get_running_loop()
    found = _audiences.get(loop)
    if found is None:
        # Unique across hosts and restarts: a restarted process never adds to its old counts.
        identity = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        found = _audiences[loop] = Audience(race_fanout(), audience_store_from_settings(identity))
    return found


async def audience_close() -> None:
    found = _audiences.pop(asyncio.get_running_loop(), None)
    if found is not None:
        await found.close()
