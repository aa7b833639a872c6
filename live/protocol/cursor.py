"""
Where one connection stands in its race's numbered updates (docs/protocol.md, "Numbered updates
and resuming"): which seqs it has been sent, which live updates it holds while a replay is read,
and what a resume must send so that the client gets nothing twice and nothing missing.

Pure: no I/O, no settings, no clock. The stream (live/protocol/streams.py) reads the race's update log
when a ``ResumeRead`` asks for it and writes the frames; the fan-out (live/protocol/fanout.py) asks
``live()`` about every update it is about to write to this connection.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

# Holes in what a connection was sent (an update whose broadcast was lost and could not be read
# from the log either) are remembered so that a resume can fill them; past this many the oldest
# are forgotten. A hole needs a database outage during a Redis restart: a handful at most.
MAX_SENT_RANGES = 32


class LiveDecision(enum.Enum):
    SEND = "send"  # write it to the client now
    SKIP = "skip"  # the client has it already
    HOLD = "hold"  # kept until the replay being read has gone out
    RESET = "reset"  # the race was numbered afresh: the client must reconnect (4409)
    OVERFLOW = "overflow"  # too many held: the client must reconnect and resume (4008)


class LoggedUpdate(Protocol):
    """A row of the race's update log (races.selectors.RaceUpdateRow) as far as this needs."""

    def __getitem__(self, key: str) -> Any: ...


Row = TypeVar("Row", bound=LoggedUpdate)


@dataclass(frozen=True, slots=True)
class ResumeRead:
    """The stretches of the race's update log a resume needs: each ``(first_seq, last_seq)``
    inclusive; ``last_seq`` None reads on from ``first_seq``, at most ``tail_limit`` rows."""

    ranges: tuple[tuple[int, int | None], ...]
    tail_limit: int


@dataclass(slots=True)
class StreamCursor:
    """The updates of one race that one connection has been sent, as inclusive seq ranges."""

    max_held: int
    max_replay: int
    epoch: str = ""  # set once the race is read; updates are held until then
    # How far the connection's stream has reached: the race as read on connecting, then every
    # update sent. Live updates only move it forward; one at or below it is not news.
    position: int = 0
    # The seqs actually sent on this connection: disjoint, ascending, not touching. A resume
    # sends what the client lacks that is not in here (what came before the connection, holes).
    sent: list[tuple[int, int]] = field(default_factory=list)
    holding: bool = True  # live updates wait until the connection's opening frames are out
    held: list[dict[str, Any]] = field(default_factory=list)

    # --- What has been sent -------------------------------------------------------------------

    @property
    def newest_seen(self) -> int:
        """Return the highest seq reached or held: a fan-out update up to it is not news here."""
        held = [event["seq"] for event in self.held if event["epoch"] == self.epoch]
        return max([self.position, *held])

    def has(self, seq: int) -> bool:
        return any(first <= seq <= last for first, last in self.sent)

    def mark_sent(self, first: int, last: int | None = None) -> None:
        """Record that the client has seqs ``first``..``last`` (inclusive)."""
        last = first if last is None else last
        if first > last:
            return
        sent = self.sent
        if not sent or first > sent[-1][1] + 1:
            sent.append((first, last))  # the first, or past a hole
            if len(sent) > MAX_SENT_RANGES:
                (lo, _), (_, hi) = sent[0], sent[1]
                sent[:2] = [(lo, hi)]
            return
        newest_first, newest_last = sent[-1]
        if newest_first <= first and last >= newest_last:
            sent[-1] = (newest_first, last)  # the next live update: the common case, kept cheap
            return
        merged: list[tuple[int, int]] = []
        for lo, hi in self.sent:
            if hi + 1 < first or last + 1 < lo:
                merged.append((lo, hi))
            else:
                first, last = min(first, lo), max(last, hi)
        merged.append((first, last))
        merged.sort()
        while len(merged) > MAX_SENT_RANGES:
            (lo, _), (_, hi) = merged[0], merged[1]
            merged[:2] = [(lo, hi)]
        self.sent = merged

    def unsent_count(self, first: int, last: int) -> int:
        """Return how many seqs in ``first``..``last`` this connection has not been sent."""
        if first > last:
            return 0
        covered = sum(max(0, min(hi, last) - max(lo, first) + 1) for lo, hi in self.sent)
        return last - first + 1 - covered

    def unsent_ranges(self, first: int, last: int) -> list[tuple[int, int]]:
        """Return the stretches of ``first``..``last`` this connection has not been sent."""
        ranges = []
        at = first
        for lo, hi in self.sent:
            if hi < at:
                continue
            if lo > last:
                break
            if lo > at:
                ranges.append((at, lo - 1))
            at = hi + 1
        if at <= last:
            ranges.append((at, last))
        return ranges

    # --- Live updates from the fan-out --------------------------------------------------------

    def live(self, event: dict[str, Any]) -> LiveDecision:
        """Decide what becomes of a live update; a SEND is recorded as sent."""
        if self.holding:
            if len(self.held) >= self.max_held:
                return LiveDecision.OVERFLOW
            self.held.append(event)
            return LiveDecision.HOLD
        if event["epoch"] != self.epoch:
            return LiveDecision.RESET
        if event["seq"] <= self.position:
            return LiveDecision.SKIP
        self.advance(event["seq"])
        return LiveDecision.SEND

    def advance(self, seq: int) -> None:
        """Record that update ``seq`` is sent, moving the stream on to it."""
        self.mark_sent(seq)
        self.position = max(self.position, seq)

    def hold(self) -> None:
        """Hold live updates (while a replay is read) until ``release()``."""
        self.holding = True

    def release(self) -> tuple[list[dict[str, Any]], bool]:
        """Stop holding; return the held updates to send now, in order, and whether the race was
        reset meanwhile (then the connection must be closed with 4409 and nothing sent)."""
        held, self.held, self.holding = self.held, [], False
        to_send = []
        for event in held:
            if event["epoch"] != self.epoch:
                return [], True
            if event["seq"] > self.position:
                self.advance(event["seq"])
                to_send.append(event)
        return to_send, False

    # --- Resuming -----------------------------------------------------------------------------

    def resume(self, *, last_seq: int, epoch: str | None) -> ResumeRead | bool:
        """
        Plan a resume after ``last_seq``: False if it cannot be (another epoch, or more than
        ``max_replay`` updates to send); True if nothing need be sent; else the log to read,
        to be handed to ``replay()``.
        """
        if epoch is not None and epoch != self.epoch:
            return False
        # Holes, and what came before this connection, that the client lacks.
        below = self.unsent_ranges(last_seq + 1, self.position)
        if sum(last - first + 1 for first, last in below) > self.max_replay:
            return False
        if last_seq <= self.position and not below:
            return True
        ranges: list[tuple[int, int | None]] = list(below)
        tail_limit = 0
        if last_seq > self.position:
            # The client saw further than this process has heard of (another process's updates
            # whose broadcast has not arrived here yet): the log must reach last_seq.
            ranges.append((self.position + 1, None))
            tail_limit = last_seq - self.position + self.max_replay + 1
        return ResumeRead(ranges=tuple(ranges), tail_limit=tail_limit)

    def replay(self, *, last_seq: int, plan: ResumeRead, rows: list[list[Row]]) -> list[Row] | None:
        """
        Return the logged updates to send for a resume, in seq order, recording them as sent; or
        None if the log cannot make it whole (a seq the race never reached, a reset meanwhile,
        or too many to send). ``rows`` holds what was read for each of ``plan.ranges``.
        """
        to_send: list[Row] = []
        read: list[tuple[int, int]] = []
        for (first, last), found in zip(plan.ranges, rows, strict=True):
            seqs = [row["seq"] for row in found]
            if seqs != list(range(first, first + len(seqs))):
                return None  # the log does not run on without a gap: renumbered meanwhile
            if last is not None and len(seqs) != last - first + 1:
                return None
            if last is None and (first + len(seqs) - 1) < last_seq:
                return None  # never reached
            if seqs:
                read.append((seqs[0], seqs[-1]))
            to_send.extend(row for row in found if row["seq"] > last_seq and not self.has(row["seq"]))
        if len(to_send) > self.max_replay:
            return None
        # What was read is what the client now has: sent, or had already (beyond the position,
        # another process's updates it saw), so none of it goes out again live.
        for first, last in read:
            self.mark_sent(first, last)
            self.position = max(self.position, last)
        return to_send
