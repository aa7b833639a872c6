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
from collections.abc import Callable
from typing import Any, Protocol
from weakref import WeakKeyDictionary

from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from django.conf import settings

from live.protocol.broadcasting import race_group_name, update_event
from live.protocol.daphne import buffered_bytes, close_slow_client, send_prepared_frame
from live.protocol.join_states import JoinStates
from live.protocol.messages import CLOSE_TOO_SLOW, SLOW_CLIENT_REASON, update_from_row
from races.selectors import race_card_get, race_updates_after

logger = logging.getLogger(__name__)

# Channel layers forget group members after their group expiry (a day by default); a process
# watching a race for longer re-joins well before that.
GROUP_REFRESH_S = 10 * 60
# After the channel layer fails (Redis restarting), wait this long before receiving again,
# doubling while it keeps failing up to the most: a restart takes a second or two, an outage
# longer, and retrying twice a second for an hour helps no one.
RECEIVE_RETRY_S = 0.5
RECEIVE_RETRY_MAX_S = 8.0
# Closing waits this long for its tasks to end after each cancellation, so many times.
CLOSE_WAIT_S = 1.0
CLOSE_ATTEMPTS = 10


class Subscriber(Protocol):
    @property
    def websocket_protocol(self) -> Any:
        """The client's Daphne protocol, for the prepared-frame fast path; None elsewhere."""

    @property
    def epoch(self) -> str:
        """The numbering of the race's updates the client follows."""

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
        # The race as a joining client is sent it, read once per process in a connection storm.
        self.join_states = JoinStates(watching=lambda race_id: race_id in self._joined)
        # Each race's (epoch, seq) of the newest update delivered here: updates go out once each,
        # in seq order, and a gap (an update stored but whose broadcast was lost, or is late) is
        # filled from the race's update log before the update after it.
        self._delivered: dict[int, tuple[str, int]] = {}
        # Called once the process is back in its groups after the channel layer was away, and
        # has sent its clients what was stored meanwhile.
        self.caught_up_listeners: list[Callable[[], None]] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._leaving: set[asyncio.Task[None]] = set()
        self._closing = False

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

    def drop(self, race_id: int, subscriber: Subscriber) -> None:
        """Deliver nothing more to ``subscriber``, at once (callable from a transport's
        connection-lost callback); the process leaves the race's group after its last client."""
        members = self.subscribers.get(race_id)
        if members is None or subscriber not in members:
            return
        members.discard(subscriber)
        if members:
            return
        del self.subscribers[race_id]
        self.join_states.forget(race_id)
        self._delivered.pop(race_id, None)
        if race_id in self._joined:
            task = asyncio.get_running_loop().create_task(self._leave_if_unwatched(race_id))
            self._leaving.add(task)
            task.add_done_callback(self._leaving.discard)

    async def _leave_if_unwatched(self, race_id: int) -> None:
        async with self._lock(race_id):
            # A client may have joined since: then the process stays in the group.
            if race_id in self.subscribers or race_id not in self._joined:
                return
            self._joined.discard(race_id)
            try:
                await self.layer.group_discard(race_group_name(race_id), self.channel)
            except Exception:
                # Redis is down: the membership lapses with the group expiry; a late update
                # for a race nobody here watches finds no subscribers and goes nowhere.
                logger.warning("Leaving race %s's group failed", race_id)

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
        failures = 0  # in a row: the retry waits longer each time, and the traceback is logged once
        while not self._closing:
            if needs_rejoin:
                # A Redis that restarted has forgotten every group: join ours again (until that
                # works), or this process's clients would silently never hear of their races.
                needs_rejoin = not await self._rejoin()
                if needs_rejoin:
                    failures += 1
                    await asyncio.sleep(_retry_delay_s(failures))
                    continue
                await self._catch_up()
            try:
                event = await self.layer.receive(self.channel)
            except asyncio.CancelledError:
                raise
            except Exception as error:
                if self._closing:
                    return  # the close's cancellation became this error (see close)
                failures += 1
                delay_s = _retry_delay_s(failures)
                if failures == 1:
                    logger.exception("Receiving race updates failed; retrying in %s s", delay_s)
                else:
                    logger.warning("Receiving race updates failed again (%s); retrying in %s s", error, delay_s)
                await asyncio.sleep(delay_s)
                needs_rejoin = True
                continue
            if failures:
                logger.info("Receiving race updates again after %s failures", failures)
                failures = 0
            await self._deliver(event)

    async def _rejoin(self) -> bool:
        """Join every watched race's group again; return whether all joins succeeded."""
        for race_id in list(self._joined):
            try:
                await self.layer.group_add(race_group_name(race_id), self.channel)
            except Exception as error:
                logger.warning("Re-joining race %s's group failed (%s); will retry", race_id, error)
                return False
        return True

    async def _catch_up(self) -> None:
        """Send each watched race's clients the updates stored while this process was out of its
        groups, now that it is back in them."""
        # Their broadcasts went nowhere (Redis restarting: found by the soak run). The next
        # update would fill the gap from the log, but a race's last one (its official result, a
        # feed's abandonment) has none after it, and every client of the race, in every process,
        # waited for it until they reconnected. Read after joining again, as a connecting client
        # does: what is stored later is published to the groups this process is back in.
        for race_id in list(self.subscribers):
            try:
                card = await database_sync_to_async(race_card_get)(race_id=race_id)
            except Exception:
                logger.exception("Reading race %s to send what was stored while Redis was away failed", race_id)
                continue
            if card is None:
                continue
            epoch, newest_seq = card["market"]["updates_epoch"], card["market"]["update_seq"]
            sent_seq = self._sent_seq(race_id, epoch)
            if sent_seq is not None and newest_seq > sent_seq:
                self.join_states.arrived(race_id)  # a join state read before may lack them
                await self._fill_gap(race_id, epoch, after_seq=sent_seq, before_seq=newest_seq + 1)
        # A member that follows no numbering (a meeting board's tap) cannot be filled from the
        # log: it is told to read its races again.
        for listener in list(self.caught_up_listeners):
            listener()

    def _sent_seq(self, race_id: int, epoch: str) -> int | None:
        """Return the newest update of ``epoch`` this process sent the race's clients (None: none
        of them follows that epoch)."""
        delivered = self._delivered.get(race_id)
        if delivered is not None and delivered[0] == epoch:
            return delivered[1]
        # Nothing delivered since this process joined the race's group (or since the race was
        # reset): what its clients were last sent.
        seen = [s.seen_seq for s in self.subscribers.get(race_id, ()) if s.epoch == epoch]
        return min(seen) if seen else None

    async def _deliver(self, event: dict[str, Any]) -> None:
        """Deliver one published update, after any it skipped over, and never one twice."""
        race_id, epoch, seq = event["race_id"], event["epoch"], event["seq"]
        self.join_states.arrived(race_id)
        delivered = self._delivered.get(race_id)
        if delivered is not None and delivered[0] == epoch and seq <= delivered[1]:
            return  # a late copy of what went out already (or was filled from the log)
        sent_seq = self._sent_seq(race_id, epoch)
        if sent_seq is not None and seq > sent_seq + 1:
            await self._fill_gap(race_id, epoch, after_seq=sent_seq, before_seq=seq)
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
            logger.exception(
                "Reading race %s updates %s-%s to fill a gap failed", race_id, after_seq + 1, before_seq - 1
            )
            return
        if rows:
            logger.info(
                "Race %s: sending updates %s-%s whose broadcast did not arrive",
                race_id,
                rows[0]["seq"],
                rows[-1]["seq"],
            )
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
        self.join_states.passed(event)
        prepared = None
        failed = 0
        max_buffered_bytes = settings.WEBSOCKET_MAX_BUFFERED_BYTES  # read once, not per client
        for subscriber in list(self.subscribers.get(race_id, ())):
            try:
                if not subscriber.takes(event):
                    continue
                protocol = subscriber.websocket_protocol
                if protocol is not None:
                    prepared = prepared or protocol.factory.prepareMessage(text.encode("utf-8"))
                    if not frame_write(protocol, prepared, max_buffered_bytes=max_buffered_bytes, about=race_id):
                        self.drop(race_id, subscriber)  # served no more; its socket goes after the grace
                else:
                    await subscriber.send(text_data=text)
            except Exception:
                # Logged once per update, however many clients it failed for: a fault that hits
                # every client (a library change, say) must not write a traceback per phone.
                failed += 1
                if failed == 1:
                    logger.exception("Delivering race %s update %s to a client failed", race_id, event["seq"])
        if failed > 1:
            logger.error("Delivering race %s update %s failed for %s clients in all", race_id, event["seq"], failed)

    async def _refresh_forever(self) -> None:
        while not self._closing:
            await asyncio.sleep(GROUP_REFRESH_S)
            await self._rejoin()

    async def close(self) -> None:
        # A cancellation that lands just as a Redis read times out can be lost on Python 3.11
        # (asyncio.timeout inside the client turns it into a TimeoutError, which the receive loop
        # retries): found as a test teardown that hung one run in ten. So the loops also stop on
        # _closing, and whatever still runs is cancelled again until it ends.
        self._closing = True
        running = [*self._tasks, *self._leaving]
        for _ in range(CLOSE_ATTEMPTS):
            running = [task for task in running if not task.done()]
            if not running:
                break
            for task in self._tasks:
                task.cancel()
            await asyncio.wait(running, timeout=CLOSE_WAIT_S)
        else:
            logger.warning("The race fan-out's tasks did not stop: %s", running)
        await asyncio.gather(*[t for t in running if t.done()], return_exceptions=True)
        for race_id in list(self._joined):
            await self.layer.group_discard(race_group_name(race_id), self.channel)
        self._joined.clear()
        self.subscribers.clear()


def frame_write(protocol: Any, prepared: Any, *, max_buffered_bytes: int, about: object, what: str = "race") -> bool:
    """Write a prepared frame (built once for every socket it goes to) straight to a Daphne
    connection; return False instead for a client that stopped reading, closed (4008) rather than
    fed without bound, and never slowing the others. It may reconnect and resume."""
    if buffered_bytes(protocol.transport) > max_buffered_bytes:
        if protocol.state == protocol.STATE_OPEN:
            logger.info("Closing a client of %s %s that is not reading its updates", what, about)
            close_slow_client(
                protocol, code=CLOSE_TOO_SLOW, reason=SLOW_CLIENT_REASON, grace_s=settings.WEBSOCKET_SLOW_CLOSE_GRACE_S
            )
        return False
    send_prepared_frame(protocol, prepared)
    return True


def _retry_delay_s(failures: int) -> float:
    return min(RECEIVE_RETRY_MAX_S, RECEIVE_RETRY_S * 2 ** (failures - 1))


_fanouts: WeakKeyDictionary[asyncio.AbstractEventLoop, RaceFanout] = WeakKeyDictionary()


def race_fanout() -> RaceFanout:
    """Return this event loop's fan-out (a server process has one loop, so one fan-out)."""
    loop = asyncio.get_running_loop()
    fanout = _fanouts.get(loop)
    if fanout is None:
        fanout = _fanouts[loop] = RaceFanout()
    return fanout


def races_watched() -> int:
    """Return how many races this event loop's fan-out delivers to (0 before the first client)."""
    fanout = _fanouts.get(asyncio.get_running_loop())
    return len(fanout.subscribers) if fanout is not None else 0


async def race_fanout_close() -> None:
    fanout = _fanouts.pop(asyncio.get_running_loop(), None)
    if fanout is not None:
        await fanout.close()
