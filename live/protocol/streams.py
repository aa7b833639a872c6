"""
One connection's stream of one race: joined to the race's fan-out, read once on joining, resumed
from a seq, its live updates held while its opening frames or a replay go out, then let straight
through. ``/ws/races/{race_id}`` is a connection with one stream; ``/ws/live`` has one per race
it subscribes to (live/protocol/consumers.py). Each message already carries its ``race_id``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Protocol

from channels.db import database_sync_to_async
from django.conf import settings

from live.protocol.audience import audience
from live.protocol.cursor import LiveDecision, ResumeRead, StreamCursor
from live.protocol.fanout import race_fanout
from live.protocol.join_states import JoinState
from live.protocol.lease import ConnectionLease
from live.protocol.messages import (
    CLOSE_RACE_RESET,
    CLOSE_TOO_SLOW,
    InitialStateMessage,
    SubscribedMessage,
    encode,
    update_from_row,
)
from races.models import Race
from races.selectors import RaceCard, RaceUpdateRow, race_card_get, race_updates_between

RACE_RESET_REASON = "The race was reset: reconnect for its new state"
REPLAY_OVERFLOW_REASON = "Client too slow: too many updates came while its replay was read"


@database_sync_to_async
def _race_card(race_id: int) -> RaceCard | None:
    return race_card_get(race_id=race_id)


@database_sync_to_async
def _race_updates_read(race_id: int, plan: ResumeRead) -> list[list[RaceUpdateRow]]:
    """Return the stretches of the race's update log a resume needs, in one worker-thread hop."""
    return [
        race_updates_between(race_id=race_id, first_seq=first, last_seq=last, limit=plan.tail_limit)
        for first, last in plan.ranges
    ]


def _join_state(race_id: int, card: RaceCard) -> JoinState:
    """Return what a joining client is sent: initial_state, then the latest odds and the latest
    result, interim or official, where the race has them (a late joiner does not wait for the
    next update)."""
    market = card["market"]
    odds, result = market["latest_odds"], market["latest_result"]
    return JoinState(
        initial_frame=encode(InitialStateMessage(race_id=race_id, card=card, epoch=market["updates_epoch"])),
        odds_frame=encode(update_from_row(race_id=race_id, row=odds)) if odds else None,
        odds_seq=odds["seq"] if odds else 0,
        result_frame=encode(update_from_row(race_id=race_id, row=result)) if result else None,
        result_seq=result["seq"] if result else 0,
        latest_seq=market["update_seq"],
        epoch=market["updates_epoch"],
        finished=market["status"] in (Race.Status.OFFICIAL, Race.Status.ABANDONED),
        fed=market["fed"],
        read_at=time.monotonic(),
    )


async def _current_join_state(race_id: int) -> JoinState | None:
    """Return what a client joining the race now is sent (None: no such race). Call it only once
    subscribed to the race's fan-out. The process's cached copy serves if it is fresh; else one
    database read serves every client connecting meanwhile (a reconnection storm reads the race
    once, not once per phone)."""

    async def read() -> JoinState | None:
        card = await _race_card(race_id)
        return None if card is None else _join_state(race_id, card)

    join_states = race_fanout().join_states
    return join_states.get(race_id) or await join_states.read(race_id, read)


class StreamOwner(Protocol):
    """The connection a stream belongs to (live/protocol/connection.py)."""

    lease: ConnectionLease
    gone: bool

    @property
    def websocket_protocol(self) -> Any: ...

    async def send(self, text_data: str | None = None, bytes_data: bytes | None = None, close: bool = False) -> None:
        """The connection's ASGI send: the fan-out's way to the client outside Daphne."""

    async def send_frames(self, frames: list[str]) -> None: ...

    def stream_ended(self, stream: RaceStream, code: int, reason: str) -> None:
        """The stream cannot go on (the race was reset, or too much came during a replay)."""


@dataclass(frozen=True, slots=True)
class Opening:
    """What a stream sends first, once joined: ``initial_state``, then ``rest``: the
    ``subscribed`` a resume (or /ws/live) is answered with, and the race's latest odds and result
    or the replay of what the client lacks. ``watches_market``: a viewer the simulated market
    hears of (the race's market runs, or may)."""

    initial_frame: str
    rest: list[str]
    watches_market: bool


class RaceStream:
    """One connection's place in one race's fan-out, and where it stands in the race's updates."""

    counts_as_viewer = True  # in the race's viewers (live/protocol/audience.py)

    def __init__(self, owner: StreamOwner, race_id: int) -> None:
        self.owner = owner
        self.race_id = race_id
        self.cursor = StreamCursor(
            max_held=settings.WEBSOCKET_MAX_HELD_UPDATES, max_replay=settings.WEBSOCKET_RESUME_MAX_UPDATES
        )

    # --- Joining and resuming -----------------------------------------------------------------

    async def open(self, *, resume: dict[str, Any] | None, always_subscribed: bool) -> Opening | None:
        """Join the race's fan-out (its live updates are held from here), read the race, and
        return what to send first; None if there is no such race (or the client went meanwhile).
        ``resume`` is subscribe's ``last_seq`` and ``epoch``; ``always_subscribed`` answers
        ``subscribed`` even without one. Raises if the channel layer cannot be reached."""
        # Join before reading the race, so that no update published meanwhile is missed: the
        # cursor holds it, and skips it if the read already had it.
        fanout, lease = race_fanout(), self.owner.lease
        lease.take_fanout_place(fanout, self.race_id, self)
        await fanout.subscribe(self.race_id, self)
        lease.take_fanout_place(fanout, self.race_id, self)  # again: the client may have gone meanwhile
        audience().wake()
        joining = await _current_join_state(self.race_id)
        if joining is None or self.owner.gone:
            return None
        self.cursor.epoch, self.cursor.position = joining.epoch, joining.latest_seq
        replay = None if resume is None else await self.plan_resume(**resume)
        if self.owner.gone:
            return None
        rest = []
        if resume is not None or always_subscribed:
            rest.append(self.subscribed_frame(resumed=None if resume is None else replay is not None))
        rest += self.fresh_start(joining) if replay is None else replay
        return Opening(
            initial_frame=joining.initial_frame, rest=rest, watches_market=not joining.fed and not joining.finished
        )

    def fresh_start(self, joining: JoinState) -> list[str]:
        """Return the race's latest odds and result for a client starting afresh, recorded as sent."""
        for seq, _ in joining.latest_frames:
            self.cursor.mark_sent(seq)
        return [frame for _, frame in joining.latest_frames]

    async def resubscribe(self, *, last_seq: int | None, epoch: str | None) -> None:
        """Answer a subscribe to the race the stream already follows with ``subscribed``; with
        ``last_seq``, send what the client lacks and this connection has not sent (nothing
        twice, nothing missing); ``resumed`` says whether that could be done."""
        if last_seq is None:
            await self.owner.send_frames([self.subscribed_frame(resumed=None)])
            return
        self.cursor.hold()
        replay = await self.plan_resume(last_seq=last_seq, epoch=epoch)
        if self.owner.gone:
            return
        await self.owner.send_frames([self.subscribed_frame(resumed=replay is not None), *(replay or [])])
        await self.stream()

    async def plan_resume(self, *, last_seq: int, epoch: str | None) -> list[str] | None:
        """Return the frames of the updates after ``last_seq`` that the client lacks and this
        connection has not sent (recorded as sent), or None if they cannot be had: another
        epoch, a seq the race's log never reached, or too many. Live updates are held meanwhile."""
        plan = self.cursor.resume(last_seq=last_seq, epoch=epoch)
        if plan is True:
            return []
        if plan is False:
            return None
        rows = await _race_updates_read(self.race_id, plan)
        replay = self.cursor.replay(last_seq=last_seq, plan=plan, rows=rows)
        if replay is None:
            return None
        return [encode(update_from_row(race_id=self.race_id, row=row)) for row in replay]

    def subscribed_frame(self, *, resumed: bool | None) -> str:
        return encode(
            SubscribedMessage(
                race_id=self.race_id, epoch=self.cursor.epoch, seq=self.cursor.newest_seen, resumed=resumed
            )
        )

    async def stream(self) -> None:
        """Send the updates held meanwhile, in order, then let live ones straight through."""
        held, reset = self.cursor.release()
        if reset:
            self.owner.stream_ended(self, CLOSE_RACE_RESET, RACE_RESET_REASON)
            return
        await self.owner.send_frames([event["text"] for event in held])

    # --- The race's fan-out (live/protocol/fanout.py Subscriber) -------------------------------

    @property
    def websocket_protocol(self) -> Any:
        return self.owner.websocket_protocol

    @property
    def epoch(self) -> str:
        return self.cursor.epoch

    @property
    def seen_seq(self) -> int:
        return self.cursor.newest_seen

    def takes(self, event: dict[str, Any]) -> bool:
        decision = self.cursor.live(event)
        if decision is LiveDecision.RESET:
            # The race's updates were numbered afresh: what this client has is of the old history.
            self.owner.stream_ended(self, CLOSE_RACE_RESET, RACE_RESET_REASON)
        elif decision is LiveDecision.OVERFLOW:
            self.owner.stream_ended(self, CLOSE_TOO_SLOW, REPLAY_OVERFLOW_REASON)
        return decision is LiveDecision.SEND

    async def send(self, text_data: str) -> None:
        await self.owner.send(text_data=text_data)
