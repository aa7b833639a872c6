"""
Race summaries for meeting and race-day boards (``/ws/live`` subscribed to a ``meeting_id`` or a
``date``): each race at a glance (its status, start time, favourite, winners), sent again whenever
it changes, at most once a second per race, the latest winning; a status change or a result is
never held back.

One ``SummaryBoard`` per process. It is a single member of each watched race's fan-out (a
``RaceTap``), however many connections watch the race's summary: an update only marks the race
changed. The board then reads the changed races' summaries (one read for all that are due),
keeps each, encodes it once and writes the same frame to every connection watching it; a change
of viewers only re-encodes the kept summary. A connection joining a board is sent the kept
summaries, so a crowd subscribing at once costs a read per race every two seconds at most, not a
read per connection.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from collections import Counter, OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol
from weakref import WeakKeyDictionary

from channels.db import database_sync_to_async
from django.conf import settings

from live.protocol.audience import Audience, audience
from live.protocol.fanout import RaceFanout, frame_write, race_fanout
from live.protocol.messages import RaceSummaryMessage, encode
from races.selectors import RaceSummary, race_summaries_get

logger = logging.getLogger(__name__)

# A race's summary goes out at most this often: odds move every few seconds on every race of a
# meeting, and a board needs the latest, not each one.
SUMMARY_INTERVAL_S = 1.0
# How long a joining connection may be sent a race's summary as read for another: admin edits of a
# race card (its name, say) announce no update, so they reach joiners within this time.
KEPT_SUMMARY_TTL_S = 2.0
# How many meetings' and days' race lists a process keeps (the most recently read).
RACE_LISTS_KEPT_MAX = 256
# What changes a race's place on a board at once (its status, its result): never held back.
URGENT_EVENTS = frozenset({"race.status", "result.update"})


class SummaryWatcher(Protocol):
    """A connection that watches races' summaries."""

    gone: bool

    @property
    def websocket_protocol(self) -> Any: ...

    async def send_frames(self, frames: list[str]) -> None: ...


class RaceTap:
    """The board's member of one race's fan-out: an update marks the race changed, nothing more."""

    websocket_protocol = None
    epoch = ""  # follows no numbering: the fan-out measures no gap from it
    seen_seq = 0
    since_ticket = 2**62  # the board's reads numbered above this began once it heard every update

    def __init__(self, board: SummaryBoard, race_id: int) -> None:
        self.board = board
        self.race_id = race_id
        # Done once the process is in the race's group: a connection joining meanwhile waits.
        self.joined: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def takes(self, event: dict[str, Any]) -> bool:
        self.board.changed(self.race_id, urgent=event["type"] in URGENT_EVENTS)
        return False

    async def send(self, text_data: str) -> None:  # never called: takes() takes nothing
        raise AssertionError("a race tap sends nothing")


class RaceLists:
    """The races of each meeting or day subscribed to, as read less than ``KEPT_SUMMARY_TTL_S``
    ago, one read shared by the connections subscribing at once (a crowd at race start)."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._kept: OrderedDict[tuple[str, Any], tuple[list[int], float]] = OrderedDict()
        self._reads: dict[tuple[str, Any], asyncio.Task[list[int]]] = {}

    async def get(self, target: tuple[str, Any], read: Callable[[tuple[str, Any]], Awaitable[list[int]]]) -> list[int]:
        kept = self._kept.get(target)
        if kept is not None and self.clock() - kept[1] <= KEPT_SUMMARY_TTL_S:
            return list(kept[0])
        reading = self._reads.get(target)
        if reading is None:
            reading = self._reads[target] = asyncio.get_running_loop().create_task(self._read(target, read))
            reading.add_done_callback(lambda _: self._reads.pop(target, None))
        return list(await asyncio.shield(reading))  # one that goes does not cancel the others' read

    async def _read(
        self, target: tuple[str, Any], read: Callable[[tuple[str, Any]], Awaitable[list[int]]]
    ) -> list[int]:
        read_at = self.clock()
        race_ids = await read(target)
        self._kept[target] = (race_ids, read_at)
        self._kept.move_to_end(target)
        while len(self._kept) > RACE_LISTS_KEPT_MAX:  # made-up meeting codes cost a read each, never memory
            self._kept.popitem(last=False)
        return race_ids


@dataclass(slots=True)
class KeptSummary:
    """A watched race's summary as last read, kept for the connections that join its board."""

    summary: RaceSummary
    ticket: int  # the read it came from: a later read replaces it, an earlier one never does
    read_at: float  # when that read began (time.monotonic)


class SummaryBoard:
    """This process's race summaries: who watches which race's, the latest read of each, and when
    each goes out next.

    Every connection that is watching a race (and has been sent its ``meeting_state``) has been
    sent ``sent_texts[race]``: a summary goes out only when its frame differs from that, so an
    official result (a ``result_update`` and a ``race_status`` stored together) goes out once. A
    joining connection waits, skipped by every send, until it takes the kept summaries for its
    ``meeting_state``: nothing reaches it before that, and everything read after reaches it.
    """

    def __init__(self, fanout: RaceFanout, viewers: Audience, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.fanout = fanout
        self.clock = clock
        # Each watched race's viewers, counted across processes once a second: a change is a
        # change of its summary, sent from the kept one (no read).
        self.viewers = viewers
        viewers.wanted = lambda: set(self.watchers)
        viewers.on_change = lambda race_id: self.changed(race_id, urgent=False, stored=False)
        self.watchers: dict[int, Counter[SummaryWatcher]] = {}  # race -> connection -> how many of its subscriptions
        # How many of those subscriptions are still joining (not yet sent their meeting_state).
        self.joining: Counter[tuple[int, SummaryWatcher]] = Counter()
        self.taps: dict[int, RaceTap] = {}
        self.race_lists = RaceLists(clock=clock)
        self.kept: dict[int, KeptSummary] = {}
        self.sent_texts: dict[int, str] = {}
        # Races with an update stored since their kept summary's read began: their next summary
        # is read, not re-encoded.
        self.stale: set[int] = set()
        self._updates_heard: Counter[int] = Counter()
        self.changed_races: set[int] = set()
        self.urgent_races: set[int] = set()
        self.sent_at: dict[int, float] = {}
        self._tickets = 0  # reads begun
        self._reads: dict[int, asyncio.Task[None]] = {}  # race -> the read of it in progress
        self._flushing: asyncio.Task[None] | None = None
        # Set by a change while the flush waits for a race's second: that change may be due at
        # once (a status change, a result, a race not sent for a second), not when the wait ends.
        self._wake = asyncio.Event()
        self._sending: set[asyncio.Future[None]] = set()
        # An update stored while the channel layer was away reached no tap: read every race again.
        fanout.caught_up_listeners.append(self._caught_up)

    # --- Who watches --------------------------------------------------------------------------

    async def watch(self, watcher: SummaryWatcher, race_ids: list[int]) -> None:
        """Let ``watcher`` join these races' boards. It is sent nothing until ``ready``, and
        everything after. Raises, having kept nothing, if the channel layer cannot be reached."""
        joined: list[int] = []
        try:
            for race_id in race_ids:
                await self._tapped(race_id)
                self.watchers.setdefault(race_id, Counter())[watcher] += 1
                self.joining[race_id, watcher] += 1
                joined.append(race_id)
        except BaseException:
            self.unwatch(watcher, joined)
            raise
        self.viewers.wake()

    async def _tapped(self, race_id: int) -> None:
        """Return once the board hears every update of the race (joining its group if need be)."""
        while (tap := self.taps.get(race_id)) is None or not tap.joined.done():
            if tap is None:
                await self._tap(race_id)
                return
            try:
                await asyncio.shield(tap.joined)
            except RuntimeError:
                continue  # the connection joining for us went (or failed): try ourselves

    async def _tap(self, race_id: int) -> None:
        tap = self.taps[race_id] = RaceTap(self, race_id)
        tap.joined.add_done_callback(lambda joined: joined.cancelled() or joined.exception())  # retrieved
        try:
            await self.fanout.subscribe(race_id, tap)
        except BaseException as error:
            del self.taps[race_id]
            tap.joined.set_exception(RuntimeError(f"Joining race {race_id}'s group failed: {error!r}"))
            raise
        tap.since_ticket = self._tickets  # a read begun later hears every update since
        tap.joined.set_result(None)

    async def current(self, race_ids: list[int]) -> None:
        """Make sure these watched races have a summary kept, read less than ``KEPT_SUMMARY_TTL_S``
        ago (or since updated: that update's read is under way). Concurrent callers share reads.
        Raises if the database cannot be read."""
        for _ in range(2):  # again if a shared read began before a race's tap (it kept nothing)
            now = self.clock()
            reads: set[asyncio.Task[None]] = set()
            unread: list[int] = []
            for race_id in race_ids:
                kept = self.kept.get(race_id)
                if race_id not in self.taps or kept is not None and now - kept.read_at <= KEPT_SUMMARY_TTL_S:
                    continue
                if race_id in self._reads:
                    reads.add(self._reads[race_id])
                else:
                    unread.append(race_id)
            if unread:
                reads.add(self._read(unread))
            if not reads:
                return
            for read in reads:
                await asyncio.shield(read)  # a joiner that goes does not cancel the others' read
            if all(race_id in self.kept or race_id not in self.taps for race_id in race_ids):
                return

    def ready(self, watcher: SummaryWatcher, race_ids: list[int]) -> list[RaceSummary]:
        """Return the kept summaries of these races in start order, for ``watcher``'s
        meeting_state, and send it every later change from now on. Synchronous: nothing can be
        sent between taking them and being ready."""
        for race_id in race_ids:
            key = (race_id, watcher)
            if self.joining[key] > 0:
                self.joining[key] -= 1
            if self.joining[key] <= 0:
                del self.joining[key]
        return self.snapshot(race_ids)

    def snapshot(self, race_ids: list[int]) -> list[RaceSummary]:
        summaries = [self.kept[race_id].summary for race_id in race_ids if race_id in self.kept]
        return sorted(summaries, key=_start_order)

    def unwatch(self, watcher: SummaryWatcher, race_ids: list[int]) -> None:
        """Stop sending ``watcher`` these races' summaries (synchronous: a lease gives it back)."""
        for race_id in race_ids:
            watching = self.watchers.get(race_id)
            if watching is None or watcher not in watching:
                continue
            watching[watcher] -= 1
            key = (race_id, watcher)
            if watching[watcher] <= 0:
                del watching[watcher]
                self.joining.pop(key, None)
            elif self.joining[key] > watching[watcher]:
                self.joining[key] = watching[watcher]
            elif self.joining[key] <= 0:
                del self.joining[key]
            if not watching:
                self._forget(race_id)

    def _forget(self, race_id: int) -> None:
        """Let the race go: nobody here watches its summary, so no update of it is heard."""
        del self.watchers[race_id]
        tap = self.taps.pop(race_id, None)
        if tap is not None:
            self.fanout.drop(race_id, tap)
        for kept in (self.kept, self.sent_texts, self.sent_at, self._reads, self._updates_heard):
            kept.pop(race_id, None)
        for races in (self.changed_races, self.urgent_races, self.stale):
            races.discard(race_id)

    # --- What changed, and when it goes out ---------------------------------------------------

    def changed(self, race_id: int, *, urgent: bool, stored: bool = True) -> None:
        """Note a change of the race's summary: an update ``stored`` (read it again) or its
        viewers (re-encode the kept one)."""
        if stored:
            self._updates_heard[race_id] += 1
            self.stale.add(race_id)
        self.changed_races.add(race_id)
        if urgent:
            self.urgent_races.add(race_id)
        if self._flushing is None or self._flushing.done():
            self._flushing = asyncio.get_running_loop().create_task(self._flush())
        else:
            self._wake.set()

    async def _flush(self) -> None:
        """Send the changed races' summaries as each falls due, until none is left."""
        while self.changed_races:
            now = self.clock()
            due = {race_id for race_id in self.changed_races if self._due(race_id, now)}
            if not due:
                next_due = min(self.sent_at[race_id] for race_id in self.changed_races) + SUMMARY_INTERVAL_S
                self._wake.clear()
                try:
                    await asyncio.wait_for(self._wake.wait(), timeout=max(0.0, next_due - now))
                except TimeoutError:
                    pass
                continue
            self.changed_races -= due
            self.urgent_races -= due
            unread = sorted(race_id for race_id in due if race_id in self.stale or race_id not in self.kept)
            for race_id in due.difference(unread):
                self._publish(race_id, now=now)  # only its viewers changed
            if not unread:
                continue
            try:
                # Read after the update was stored (it is broadcast on commit): the summary has
                # it, and anything since marks the race changed again.
                await self._read(unread, due=True)
            except Exception:
                logger.exception("Reading the summaries of races %s failed; they go out with their next change", unread)
                for race_id in unread:
                    self.kept.pop(race_id, None)  # a joiner reads for itself

    def _caught_up(self) -> None:
        for race_id in list(self.taps):
            self.changed(race_id, urgent=True)  # what was missed may be a result

    def _due(self, race_id: int, now: float) -> bool:
        return (
            race_id in self.urgent_races or now - self.sent_at.get(race_id, -SUMMARY_INTERVAL_S) >= SUMMARY_INTERVAL_S
        )

    def _read(self, race_ids: list[int], *, due: bool = False) -> asyncio.Task[None]:
        """Read these races' summaries in a task of their own, keep each, and send each that
        changed: at once if ``due`` (the flush's read), else when its second allows."""
        self._tickets += 1
        read = asyncio.get_running_loop().create_task(self._read_and_keep(race_ids, self._tickets, due=due))
        for race_id in race_ids:
            self._reads[race_id] = read

        def done(read: asyncio.Task[None]) -> None:
            for race_id in race_ids:
                if self._reads.get(race_id) is read:
                    del self._reads[race_id]
            if not read.cancelled():
                read.exception()  # retrieved: whoever awaited it has logged or raised it

        read.add_done_callback(done)
        return read

    async def _read_and_keep(self, race_ids: list[int], ticket: int, *, due: bool) -> None:
        read_at = self.clock()
        heard = {race_id: self._updates_heard[race_id] for race_id in race_ids}
        summaries = await database_sync_to_async(race_summaries_get)(race_ids=race_ids)
        found = set()
        for summary in summaries:
            race_id = summary["id"]
            found.add(race_id)
            tap = self.taps.get(race_id)
            kept = self.kept.get(race_id)
            # Kept only if this process heard every update of the race since the read began,
            # and if no later read has been kept.
            if tap is None or ticket <= tap.since_ticket or kept is not None and kept.ticket > ticket:
                continue
            self.kept[race_id] = KeptSummary(summary=summary, ticket=ticket, read_at=read_at)
            if self._updates_heard[race_id] == heard[race_id]:
                self.stale.discard(race_id)
            now = self.clock()
            if due or self._due(race_id, now):
                self._publish(race_id, now=now)
            elif self._frame(race_id) != self.sent_texts.get(race_id):
                self.changed(race_id, urgent=False, stored=False)  # in its second
        for race_id in set(race_ids) - found:
            self.kept.pop(race_id, None)  # deleted

    def _frame(self, race_id: int) -> str:
        return encode(RaceSummaryMessage(summary=self.kept[race_id].summary, viewers=self.viewers.total(race_id)))

    def _publish(self, race_id: int, *, now: float) -> None:
        """Write the race's kept summary, encoded once, to every connection watching it, unless
        it is what they were sent last."""
        if race_id not in self.kept:
            return
        text = self._frame(race_id)
        if text == self.sent_texts.get(race_id):
            return
        self.sent_texts[race_id] = text
        self.sent_at[race_id] = now
        prepared = None
        max_buffered_bytes = settings.WEBSOCKET_MAX_BUFFERED_BYTES
        for watcher, subscriptions in list(self.watchers.get(race_id, {}).items()):
            if watcher.gone or self.joining.get((race_id, watcher), 0) >= subscriptions:
                continue
            protocol = watcher.websocket_protocol
            if protocol is None:
                task = asyncio.ensure_future(watcher.send_frames([text]))
                self._keep(task)
                continue
            prepared = prepared or protocol.factory.prepareMessage(text.encode("utf-8"))
            frame_write(
                protocol, prepared, max_buffered_bytes=max_buffered_bytes, about=race_id, what="summaries of race"
            )

    def _keep(self, task: asyncio.Future[None]) -> None:
        # A task nobody holds may be collected before it has run.
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    async def close(self) -> None:
        if self._caught_up in self.fanout.caught_up_listeners:
            self.fanout.caught_up_listeners.remove(self._caught_up)
        if self._flushing is not None:
            self._flushing.cancel()
            await asyncio.gather(self._flushing, return_exceptions=True)
        reads = {*self._reads.values(), *self.race_lists._reads.values()}
        for read in reads:
            read.cancel()
        await asyncio.gather(*reads, return_exceptions=True)


_NO_START = dt.datetime.max.replace(tzinfo=dt.UTC)


def _start_order(summary: RaceSummary) -> tuple[dt.datetime, str, int]:
    """race_summaries_get's order: start time (races without one last), meeting, race number."""
    return (summary["race_datetime"] or _NO_START, summary["meeting_id"], summary["race_number"])


_boards: WeakKeyDictionary[asyncio.AbstractEventLoop, SummaryBoard] = WeakKeyDictionary()


def summary_board() -> SummaryBoard:
    """Return this event loop's summary board (a server process has one loop, so one board)."""
    loop = asyncio.get_running_loop()
    board = _boards.get(loop)
    if board is None:
        board = _boards[loop] = SummaryBoard(race_fanout(), audience())
    return board


async def summary_board_close() -> None:
    board = _boards.pop(asyncio.get_running_loop(), None)
    if board is not None:
        await board.close()
