"""
The race as a joining client is sent it, kept per process so that a connection storm (every phone
reconnecting after a restart, a push notification at race start) reads each race once, not once
per client.

A state is kept only while the process is in the race's channel-layer group, so that every update
since it was read has passed through here: each one moves the kept state on (new odds become its
latest frame) or drops it (a result or a reset changes the card: read afresh). Concurrent joiners
share one read in progress, unless an update passed since it began.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from live.protocol.broadcasting import EVENT_ODDS_UPDATE

# How long a joining client may be served the race as another client read it: admin edits of a
# race card (a driver change, say) announce no update, so they reach joiners within this time.
JOIN_STATE_TTL_S = 2.0


@dataclass
class JoinState:
    """What a client joining a race is sent, as frames already encoded: initial_state (the card,
    its status and field as they are), then the market's latest odds and the latest result,
    interim or official, where the race has them; the card reflects every update up to
    ``latest_seq`` in ``epoch``."""

    initial_frame: str
    odds_frame: str | None
    odds_seq: int
    result_frame: str | None
    result_seq: int
    latest_seq: int  # the race's newest update number when read: the client starts from here
    epoch: str
    finished: bool  # official or abandoned: no market will run
    fed: bool
    read_at: float

    @property
    def latest_frames(self) -> list[tuple[int, str]]:
        """Return (seq, frame) of the odds and the result a joiner is sent after the card."""
        return [
            (seq, frame)
            for seq, frame in ((self.odds_seq, self.odds_frame), (self.result_seq, self.result_frame))
            if frame
        ]


Read = Callable[[], Awaitable[JoinState | None]]


class JoinStates:
    """This process's kept join states, one per watched race, and the reads in progress."""

    def __init__(self, *, watching: Callable[[int], bool], clock: Callable[[], float] = time.monotonic) -> None:
        # Whether the process is in the race's group (so that every update passes through here).
        self.watching = watching
        self.clock = clock
        self._states: dict[int, JoinState] = {}
        self._generations: dict[int, int] = {}
        # The read of a race in progress, with the generation it started in.
        self._reads: dict[int, tuple[asyncio.Task[JoinState | None], int]] = {}

    def get(self, race_id: int) -> JoinState | None:
        """Return the race's kept state if it is fresh enough to serve a joiner."""
        state = self._states.get(race_id)
        if state is not None and self.clock() - state.read_at > JOIN_STATE_TTL_S:
            del self._states[race_id]
            return None
        return state

    async def read(self, race_id: int, read: Read) -> JoinState | None:
        """
        Return the race's join state from ``read()``, sharing a read already in progress.

        The caller must already be subscribed to the race's updates. Sharing is safe only if no
        update passed through since the read began: one that did might be in neither the read nor
        the caller's held updates (it subscribed after the read began). Then the caller reads for
        itself. The read runs as a task of its own, so a client that gives up waiting does not
        cancel it for the others.
        """
        generation = self._generations.get(race_id, 0)
        in_progress = self._reads.get(race_id)
        if in_progress is None or in_progress[1] != generation:
            task = asyncio.get_running_loop().create_task(self._read_and_keep(race_id, read, generation))
            task.add_done_callback(lambda done: done.cancelled() or done.exception())  # always retrieved
            in_progress = self._reads[race_id] = (task, generation)
        return await asyncio.shield(in_progress[0])

    async def _read_and_keep(self, race_id: int, read: Read, generation: int) -> JoinState | None:
        try:
            state = await read()
            # Kept unless an update arrived during the read (the read may or may not include it)
            # or the process has left the race's group.
            if state is not None and self.watching(race_id) and self._generations.get(race_id, 0) == generation:
                self._states[race_id] = state
            return state
        finally:
            if self._reads.get(race_id, (None,))[0] is asyncio.current_task():
                del self._reads[race_id]

    def arrived(self, race_id: int) -> None:
        """Note that an update of the race arrived (a read begun before it may lack it)."""
        self._generations[race_id] = self._generations.get(race_id, 0) + 1

    def passed(self, event: dict[str, Any]) -> None:
        """Take in an update on its way to the race's clients: move the kept state on, or drop it."""
        race_id = event["race_id"]
        state = self._states.get(race_id)
        if state is None:
            return
        if state.epoch != event["epoch"] or event["type"] != EVENT_ODDS_UPDATE or state.finished:
            # A status, a field change, a result (or a reset) changes the card: read afresh.
            del self._states[race_id]
        elif event["seq"] > state.latest_seq:
            state.odds_frame = event["text"]
            state.odds_seq = state.latest_seq = event["seq"]

    def forget(self, race_id: int) -> None:
        """Drop the race's kept state: the process no longer hears its updates."""
        self._states.pop(race_id, None)
