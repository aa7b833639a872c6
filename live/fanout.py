"""
Per-process fan-out of race updates to this process's WebSocket clients.

Stock Channels gives every client its own channel in the race's group, so each update costs a
channel-layer message, a queue put and a dispatch per client (and with Redis, a Redis write per
client). Here each process joins each watched race's group once; the update, encoded once by
live/broadcasting.py, arrives once per process and is written straight to each local client's
socket. Group membership is per race and per process, so clients joining and leaving never touch
the channel layer except for a race's first and last local client.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from collections.abc import Awaitable, Callable
from typing import Any, Protocol
from weakref import WeakKeyDictionary

from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from django.conf import settings

from live.broadcasting import EVENT_ODDS_UPDATE, race_group_name, update_event
from live.daphne_fixes import buffered_bytes, send_prepared_frame
from live.messages import CLOSE_TOO_SLOW, update_from_row
from races.selectors import race_updates_after

logger = logging.getLogger(__name__)

# Channel layers forget group members after their group expiry (a day by default); a process
# watching a race for longer re-joins well before that.
GROUP_REFRESH_S = 10 * 60
# After the channel layer fails (Redis restarting), wait this long before receiving again.
RECEIVE_RETRY_S = 0.5


# How long a joining client may be served the race as another client read it: admin edits of a
# race card (a driver change, say) announce no update, so they reach joiners within this time.
JOIN_STATE_TTL_S = 2.0


@dataclass
class JoinState:
    """What a client joining a race is sent, as frames already encoded: initial_state on
    connecting, then on subscribing the race's newest update (the result if declared, else the
    latest odds), numbered ``latest_seq`` in ``epoch``."""

    initial_frame: str
    latest_frame: str | None
    latest_seq: int  # the race's newest update number when read: the client starts from here
    epoch: str
    finished: bool
    fed: bool
    read_at: float


class Subscriber(Protocol):
    # The client's Daphne protocol, for the prepared-frame fast path; None elsewhere.
    websocket_protocol: Any
    epoch: str  # the numbering of the race's updates the client follows

    @property
    def seen_seq(self) -> int:
        """The newest update number this client has been sent or is holding."""

    def takes(self, event: dict[str, Any]) -> bool:
        """Return whether to send the event now (False: held until subscribed, or a duplicate)."""

    async def send(self, text_data: str) -> None: ...


class RaceFanout:
    """This process's single member of each watched race's channel-layer group."""

    def __init__(self) -> None:
        self.layer = get_channel_layer()
        self.channel: str | None = None
        self.subscribers: dict[int, set[Subscriber]] = {}
        self._joined: set[int] = set()
        self._locks: dict[int, asyncio.Lock] = {}
        # A connection storm (every phone reconnecting after a restart) reads the race once per
        # process, not once per client: the join state is kept while this process is in the
        # race's group, so every update since it was read has passed through here.
        self._join_states: dict[int, JoinState] = {}
        self._generations: dict[int, int] = {}
        # The read of a race in progress, with the generation it started in (read_join_state).
        self._reads: dict[int, tuple[asyncio.Task[JoinState | None], int]] = {}
        # Each race's (epoch, seq) of the newest update delivered here: updates go out once each,
        # in seq order, and a gap (an update stored but whose broadcast was lost, or is late) is
        # filled from the race's update log before the update after it.
        self._delivered: dict[int, tuple[str, int]] = {}
        self._tasks: list[asyncio.Task[None]] = []

    async def subscribe(self, race_id: int, subscriber: Subscriber) -> None:
        """Deliver the race's updates to ``subscriber`` from the moment this returns."""
        await self._start()
        async with self._lock(race_id):
            members = self.subscribers.setdefault(race_id, set())
            members.add(subscriber)
            if race_id not in self._joined:
                try:
                    await self.layer.group_add(race_group_name(race_id), self.channel)
                except BaseException:
                    # The channel layer is down (Redis restarting): the client is refused (1011,
                    # it retries and resumes) and nothing of it is kept here.
                    members.discard(subscriber)
                    if not members:
                        del self.subscribers[race_id]
                    raise
                self._joined.add(race_id)

    async def unsubscribe(self, race_id: int, subscriber: Subscriber) -> None:
        async with self._lock(race_id):
            members = self.subscribers.get(race_id)
            if members is None:
                return
            members.discard(subscriber)
            if members:
                return
            del self.subscribers[race_id]
            self._join_states.pop(race_id, None)
            self._delivered.pop(race_id, None)
            if race_id in self._joined:
                self._joined.discard(race_id)
                await self.layer.group_discard(race_group_name(race_id), self.channel)

    def join_state(self, race_id: int) -> JoinState | None:
        state = self._join_states.get(race_id)
        if state is not None and time.monotonic() - state.read_at > JOIN_STATE_TTL_S:
            del self._join_states[race_id]
            return None
        return state

    def generation(self, race_id: int) -> int:
        """Return a number that changes with every update of the race through this process."""
        return self._generations.get(race_id, 0)

    async def read_join_state(
        self, race_id: int, read: Callable[[], Awaitable[JoinState | None]]
    ) -> JoinState | None:
        """
        Return the race's join state from ``read()``, sharing a read already in progress.

        The caller must already be subscribed. Sharing is safe only if no update passed through
        since the read began: one that did might be in neither the read nor the caller's held
        updates (it subscribed after the read began). Then the caller reads for itself. The read
        runs as a task of its own, so a client that gives up waiting does not cancel it for the
        others.
        """
        generation = self.generation(race_id)
        in_progress = self._reads.get(race_id)
        if in_progress is None or in_progress[1] != generation:
            task = asyncio.get_running_loop().create_task(self._read_and_remember(race_id, read, generation))
            task.add_done_callback(lambda done: done.cancelled() or done.exception())  # always retrieved
            in_progress = self._reads[race_id] = (task, generation)
        return await asyncio.shield(in_progress[0])

    async def _read_and_remember(
        self, race_id: int, read: Callable[[], Awaitable[JoinState | None]], generation: int
    ) -> JoinState | None:
        try:
            state = await read()
            if state is not None:
                self.remember(race_id, state, read_in_generation=generation)
            return state
        finally:
            if self._reads.get(race_id, (None,))[0] is asyncio.current_task():
                del self._reads[race_id]

    def remember(self, race_id: int, state: JoinState, *, read_in_generation: int) -> None:
        """Keep a join state read from the database, unless an update arrived during the read
        (the read may or may not include it) or the process has left the race's group."""
        if race_id in self._joined and self.generation(race_id) == read_in_generation:
            self._join_states[race_id] = state

    def _lock(self, race_id: int) -> asyncio.Lock:
        # One lock per race orders its joins and leaves, so a leave's group_discard can never
        # land after the next client's group_add. Locks of races nobody watches are dropped.
        for stale in [r for r, lock in self._locks.items() if not lock.locked() and r not in self.subscribers]:
            del self._locks[stale]
        return self._locks.setdefault(race_id, asyncio.Lock())

    async def _start(self) -> None:
        if self.channel is None:
            self.channel = await self.layer.new_channel(prefix="race-fanout.")
            loop = asyncio.get_running_loop()
            self._tasks = [loop.create_task(self._receive_forever()), loop.create_task(self._refresh_forever())]

    async def _receive_forever(self) -> None:
        needs_rejoin = False
        while True:
            if needs_rejoin:
                # A Redis that restarted has forgotten every group: join ours again (until that
                # works), or this process's clients would silently never hear of their races.
                needs_rejoin = not await self._rejoin()
                if needs_rejoin:
                    await asyncio.sleep(RECEIVE_RETRY_S)
                    continue
            try:
                event = await self.layer.receive(self.channel)
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("Receiving race updates failed; retrying in %s s", RECEIVE_RETRY_S)
                await asyncio.sleep(RECEIVE_RETRY_S)
                needs_rejoin = True
                continue
            await self._deliver(event)

    async def _rejoin(self) -> bool:
        """Join every watched race's group again; return whether all joins succeeded."""
        for race_id in list(self._joined):
            try:
                await self.layer.group_add(race_group_name(race_id), self.channel)
            except Exception:
                logger.warning("Re-joining race %s's group failed; will retry", race_id)
                return False
        return True

    async def _deliver(self, event: dict[str, Any]) -> None:
        """Deliver one published update, after any it skipped over, and never one twice."""
        race_id, epoch, seq = event["race_id"], event["epoch"], event["seq"]
        self._generations[race_id] = self.generation(race_id) + 1
        delivered = self._delivered.get(race_id)
        if delivered is not None and delivered[0] == epoch:
            if seq <= delivered[1]:
                return  # a late copy of what went out already (or was filled from the log)
            if seq > delivered[1] + 1:
                await self._fill_gap(race_id, epoch, after_seq=delivered[1], before_seq=seq)
        else:
            # The first update since this process joined the race's group (or since the race was
            # reset): a gap is measured from what its clients were last sent.
            seen = [s.seen_seq for s in self.subscribers.get(race_id, ()) if s.epoch == epoch]
            if seen and seq > min(seen) + 1:
                await self._fill_gap(race_id, epoch, after_seq=min(seen), before_seq=seq)
        self._delivered[race_id] = (epoch, seq)
        await self._send_to_clients(event)

    async def _fill_gap(self, race_id: int, epoch: str, *, after_seq: int, before_seq: int) -> None:
        after_seq = max(after_seq, before_seq - 1 - settings.WEBSOCKET_RESUME_MAX_UPDATES)
        try:
            rows = await database_sync_to_async(race_updates_after)(
                race_id=race_id, after_seq=after_seq, limit=before_seq - after_seq - 1
            )
        except Exception:
            # The clients see the gap in the seq numbers and can resume over it themselves.
            logger.exception("Reading race %s updates %s-%s to fill a gap failed", race_id, after_seq + 1, before_seq - 1)
            return
        if rows:
            logger.info("Race %s: sending updates %s-%s whose broadcast did not arrive", race_id, rows[0]["seq"], rows[-1]["seq"])
        for row in rows:
            if row["seq"] >= before_seq:
                break
            missed = update_event(update_from_row(race_id=race_id, row=row), epoch=epoch)
            self._delivered[race_id] = (epoch, row["seq"])
            await self._send_to_clients(missed)

    async def _send_to_clients(self, event: dict[str, Any]) -> None:
        # In order, one update at a time: every client of a race sees its updates in the order
        # they were published. Under Daphne the frame is built once and the same bytes are
        # written to every socket (websockets.broadcast's approach); elsewhere, the ASGI send.
        text = event["text"]
        race_id = event["race_id"]
        state = self._join_states.get(race_id)
        if state is not None:
            if state.epoch != event["epoch"] or event["type"] != EVENT_ODDS_UPDATE or state.finished:
                del self._join_states[race_id]  # a result (or a reset) changes the card: read afresh
            elif event["seq"] > state.latest_seq:
                state.latest_frame, state.latest_seq = text, event["seq"]
        prepared = None
        max_buffered_bytes = settings.WEBSOCKET_MAX_BUFFERED_BYTES  # read once, not per client
        for subscriber in list(self.subscribers.get(race_id, ())):
            try:
                if not subscriber.takes(event):
                    continue
                protocol = subscriber.websocket_protocol
                if protocol is not None:
                    if buffered_bytes(protocol.transport) > max_buffered_bytes:
                        # A client that stopped reading: closed, not fed without bound, and
                        # never slowing the others. It may reconnect and resume.
                        if protocol.state == protocol.STATE_OPEN:
                            logger.info("Closing a client of race %s that is not reading its updates", race_id)
                            protocol.sendClose(code=CLOSE_TOO_SLOW, reason="Client too slow: updates were not read")
                        continue
                    if prepared is None:
                        prepared = protocol.factory.prepareMessage(text.encode("utf-8"))
                    send_prepared_frame(protocol, prepared)
                else:
                    await subscriber.send(text_data=text)
            except Exception:
                logger.exception("Delivering race %s update to one client failed", race_id)

    async def _refresh_forever(self) -> None:
        while True:
            await asyncio.sleep(GROUP_REFRESH_S)
            await self._rejoin()

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for race_id in list(self._joined):
            await self.layer.group_discard(race_group_name(race_id), self.channel)
        self._joined.clear()
        self.subscribers.clear()


_fanouts: WeakKeyDictionary[asyncio.AbstractEventLoop, RaceFanout] = WeakKeyDictionary()


def race_fanout() -> RaceFanout:
    """Return this event loop's fan-out (a server process has one loop, so one fan-out)."""
    loop = asyncio.get_running_loop()
    fanout = _fanouts.get(loop)
    if fanout is None:
        fanout = _fanouts[loop] = RaceFanout()
    return fanout


async def race_fanout_close() -> None:
    fanout = _fanouts.pop(asyncio.get_running_loop(), None)
    if fanout is not None:
        await fanout.close()
