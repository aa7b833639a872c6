"""
The WebSocket endpoints: ``/ws/races/{race_id}`` (one client watching one race, the spec's) and
``/ws/live`` (one connection following many races, each as ``/ws/races/{id}`` would send it).
What a connection shares with every other is in live/protocol/connection.py, one race's stream in
live/protocol/streams.py.
"""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings

from live.protocol.connection import ProtocolConsumer
from live.protocol.cursor import StreamCursor
from live.protocol.messages import (
    CLOSE_NO_SUCH_ENDPOINT,
    CLOSE_RACE_NOT_FOUND,
    CLOSE_RACE_RESET,
    ERROR_NOT_FOUND,
    ERROR_RACE_RESET,
    ERROR_TOO_MANY_SUBSCRIPTIONS,
    ErrorMessage,
    LiveMessage,
    MeetingStateMessage,
    RaceSummaryMessage,
    UnsubscribedMessage,
    WSMessage,
    encode,
)
from live.protocol.streams import RaceStream
from live.protocol.summaries import summary_board
from races.converters import DATABASE_ID_MAX
from races.selectors import RaceSummary, meeting_exists, race_ids_get


def _path_race_id(raw: str) -> int | None:
    # The route accepts any rest of the path so that a malformed id is answered with 4004 and a
    # reason instead of an HTTP error the client cannot read.
    if raw.isascii() and raw.isdigit() and len(raw) <= 18:
        return int(raw)
    return None


def _resume_from_query(query_string: bytes) -> tuple[dict[str, Any] | None, str | None]:
    """Return the resume point a URL asks for (``?last_seq=41&epoch=3f9c…``) as subscribe's
    ``last_seq`` and ``epoch``, or None; and what is wrong with it, if anything."""
    try:
        query = parse_qs(query_string.decode("ascii"), keep_blank_values=True, strict_parsing=False, max_num_fields=8)
    except (UnicodeDecodeError, ValueError):
        return None, "the query string is not one this server reads"
    if "last_seq" not in query:
        return None, ("epoch: only with last_seq." if "epoch" in query else None)
    if any(len(query.get(name, ())) > 1 for name in ("last_seq", "epoch")):
        return None, "last_seq and epoch may each be given once."
    raw_seq = query["last_seq"][0]
    fields: dict[str, Any] = {
        "type": "subscribe",
        "race_id": 0,
        "last_seq": int(raw_seq) if raw_seq.isascii() and raw_seq.isdigit() and len(raw_seq) <= 16 else raw_seq,
    }
    if "epoch" in query:
        fields["epoch"] = query["epoch"][0]
    incoming = WSMessage(data=fields)
    if not incoming.is_valid():
        return None, incoming.error_text()
    return {"last_seq": incoming.validated_data["last_seq"], "epoch": incoming.validated_data.get("epoch")}, None


class RaceConsumer(ProtocolConsumer):
    """
    Connect: join the race's fan-out (live updates held from here), read the race, accept, send
    ``initial_state``, then the race's latest update or, resuming (``?last_seq=``), the updates
    the client missed; then the held updates and every later one, in order, whether or not the
    client ever sends anything. ``subscribe`` answers ``subscribed`` and may resume again.
    """

    client_messages = WSMessage
    race_id: int = 0  # until the race is read: ids start at 1
    race_stream: RaceStream | None = None

    def describe(self) -> str:
        return f"a client of race {self.race_id}"

    @property
    def cursor(self) -> StreamCursor | None:
        return None if self.race_stream is None else self.race_stream.cursor

    async def connect(self) -> None:
        if not await self.admit():
            return
        raw_race_id = self.scope["url_route"]["kwargs"]["race_id"]
        race_id = _path_race_id(raw_race_id)
        if race_id is None:
            await self.reject(CLOSE_RACE_NOT_FOUND, f"Race not found: {raw_race_id!r} is not a race id")
            return
        resume, resume_error = _resume_from_query(self.scope.get("query_string", b""))
        stream = RaceStream(self, race_id)
        opening = await stream.open(resume=resume, always_subscribed=False)
        if self.gone:
            return
        if opening is None:
            await self.reject(CLOSE_RACE_NOT_FOUND, f"Race not found: no race with id {race_id}")
            return
        self.race_id, self.race_stream = race_id, stream
        await self.accept()
        frames = [opening.initial_frame]
        if resume_error is not None:
            frames.append(encode(ErrorMessage(message=resume_error)))
        frames += opening.rest
        if opening.watches_market:
            # A viewer of a race whose market runs (or may): the simulated market hears of it.
            self.lease.view(race_id)
        await self.send_frames(frames)
        await stream.stream()

    async def handle(self, message: dict[str, Any]) -> None:
        race_id = message["race_id"]
        if race_id != self.race_id or self.race_stream is None:
            await self.send_error(
                f"race_id: this connection is for race {self.race_id}, not {race_id}; "
                f"connect to /ws/races/{race_id} for that race."
            )
            return
        await self.race_stream.resubscribe(last_seq=message.get("last_seq"), epoch=message.get("epoch"))

    def stream_ended(self, stream: RaceStream, code: int, reason: str) -> None:
        # The client reconnects (and is sent the race anew, or resumes).
        self.close_soon(code, reason)


class LiveConsumer(ProtocolConsumer):
    """
    ``/ws/live``: one connection, many races. Accepted at once and silent until the client
    subscribes. ``subscribe`` with a ``race_id`` starts that race's stream as ``/ws/races/{id}``
    sends it (``initial_state``, ``subscribed``, the latest update or the resumed ones, then every
    update live), or, for a race already followed, answers as a subscribe there does. With a
    ``meeting_id`` or a ``date`` it sends ``meeting_state`` (every race's summary), then a
    ``race_summary`` as each changes. ``unsubscribe`` ends any of them (``unsubscribed``). A race
    or meeting that is not there, or one subscription too many, is an ``error`` naming it; the
    connection and its other subscriptions carry on.
    """

    client_messages = LiveMessage

    async def connect(self) -> None:
        self.race_streams: dict[int, RaceStream] = {}
        self.summaries: dict[tuple[str, Any], list[int]] = {}  # ("meeting_id", code) -> its races
        self.race_summaries: set[int] = set()  # followed races whose race_summary this one asked for
        self.sending: set[asyncio.Future[None]] = set()
        if not await self.admit():
            return
        await self.accept()

    def describe(self) -> str:
        return f"a /ws/live client of {self.subscription_count()} subscriptions"

    def subscription_count(self) -> int:
        return len(getattr(self, "race_streams", ())) + len(getattr(self, "summaries", ()))

    async def handle(self, message: dict[str, Any]) -> None:
        name = next(name for name in LiveMessage.TARGETS if name in message)
        target = (name, message[name])
        if message["type"] == "unsubscribe":
            if name == "race_id":
                self.end_stream(target[1])
            else:
                self.lease.give_back(target)
            await self.send_message(UnsubscribedMessage(target=target))
            return
        if target in self.summaries or target[1] in self.race_streams and name == "race_id":
            if name == "race_id":
                await self.race_streams[target[1]].resubscribe(
                    last_seq=message.get("last_seq"), epoch=message.get("epoch")
                )
                if message.get("summary"):
                    await self.watch_race_summary(target[1])
            else:
                await self.send_summaries(target)  # again: the board as it stands
            return
        limit = settings.WEBSOCKET_MAX_SUBSCRIPTIONS
        if self.subscription_count() >= limit:
            await self.send_error(
                f"{name}: at most {limit} subscriptions on one connection; unsubscribe from one first.",
                code=ERROR_TOO_MANY_SUBSCRIPTIONS,
                about=target,
            )
            return
        if name == "race_id":
            await self.follow_race(target[1], last_seq=message.get("last_seq"), epoch=message.get("epoch"))
            if message.get("summary"):
                await self.watch_race_summary(target[1])
        else:
            await self.watch_summaries(target)

    # --- A race's stream ----------------------------------------------------------------------

    async def follow_race(self, race_id: int, *, last_seq: int | None, epoch: str | None) -> None:
        opening = None
        if 1 <= race_id <= DATABASE_ID_MAX:  # else no race, and no query that would overflow
            stream = self.race_streams[race_id] = RaceStream(self, race_id)
            resume = None if last_seq is None else {"last_seq": last_seq, "epoch": epoch}
            opening = await stream.open(resume=resume, always_subscribed=True)
            if self.gone:
                return
        if opening is None:
            self.end_stream(race_id)
            await self.send_error(
                f"Race not found: no race with id {race_id}", code=ERROR_NOT_FOUND, about=("race_id", race_id)
            )
            return
        if opening.watches_market:
            self.lease.view(race_id)
        await self.send_frames([opening.initial_frame, *opening.rest])
        await stream.stream()

    def end_stream(self, race_id: int) -> None:
        """Follow the race no more: out of its fan-out at once, its viewer given back."""
        self.race_streams.pop(race_id, None)
        self.lease.give_back_race(race_id)
        self.lease.give_back(("race_summary", race_id))

    async def watch_race_summary(self, race_id: int) -> None:
        """Send a followed race's race_summary now, then as it changes: its viewers for a race's
        page, without its meeting's other races (which would be up to ten times the frames)."""
        if race_id not in self.race_streams or race_id in self.race_summaries:
            return
        self.race_summaries.add(race_id)
        board = summary_board()
        try:
            await board.watch(self, [race_id])
        except BaseException:
            self.race_summaries.discard(race_id)
            raise
        # Held once joined: a connection gone while it joined gives it back here, at once. Held
        # before, it would have been given back before the join ended, leaving the join behind.
        self.lease.hold(("race_summary", race_id), lambda: self.stop_race_summary(race_id))
        if self.gone:
            return
        await board.current([race_id])
        if self.gone:
            return
        for summary in board.ready(self, [race_id]):
            await self.send_message(RaceSummaryMessage(summary=summary, viewers=board.viewers.total(race_id)))

    def stop_race_summary(self, race_id: int) -> None:
        if race_id in self.race_summaries:
            self.race_summaries.discard(race_id)
            summary_board().unwatch(self, [race_id])

    def stream_ended(self, stream: RaceStream, code: int, reason: str) -> None:
        if self.race_streams.get(stream.race_id) is not stream:
            return
        if code != CLOSE_RACE_RESET:
            self.close_soon(code, reason)  # too slow: the client reconnects and resumes each race
            return
        # Only this race goes: the client subscribes again and is sent it anew.
        self.end_stream(stream.race_id)
        error = ErrorMessage(
            message=f"Race {stream.race_id} was reset: subscribe again for its new state",
            code=ERROR_RACE_RESET,
            about=("race_id", stream.race_id),
        )
        self.send_soon(encode(error))

    def send_soon(self, frame: str) -> None:
        """Send from synchronous code (the fan-out), after what is already on its way."""
        task = asyncio.ensure_future(self.send_frames([frame]))
        self.sending.add(task)  # kept until done: a task nobody holds may be collected mid-send
        task.add_done_callback(self.sending.discard)

    # --- A meeting's (or a day's) summaries -----------------------------------------------------

    async def watch_summaries(self, target: tuple[str, Any]) -> None:
        """Send meeting_state, then each race's summary as it changes (live/protocol/summaries.py)."""
        name, value = target
        race_ids = await summary_board().race_lists.get(target, _race_ids_read)
        if self.gone:
            return
        if not race_ids and name == "meeting_id" and not await _meeting_exists(value):
            await self.send_error(f"Meeting not found: no meeting {value!r}", code=ERROR_NOT_FOUND, about=target)
            return
        self.summaries[target] = race_ids
        board = summary_board()
        try:
            await board.watch(self, race_ids)
        except BaseException:
            self.summaries.pop(target, None)
            raise
        self.lease.hold(target, lambda: self.stop_summaries(target))  # once joined, as above
        if self.gone:
            return
        # The summaries are taken only now that every change reaches this connection: taken
        # before joining, they could miss a change made meanwhile until the race's next.
        await board.current(race_ids)
        if self.gone:
            return
        await self.send_meeting_state(target, board.ready(self, race_ids))

    async def send_summaries(self, target: tuple[str, Any]) -> None:
        """Send the board as it stands (a subscribe to a meeting or day already watched)."""
        board = summary_board()
        race_ids = self.summaries[target]
        await board.current(race_ids)
        if not self.gone:
            await self.send_meeting_state(target, board.snapshot(race_ids))

    async def send_meeting_state(self, target: tuple[str, Any], races: list[RaceSummary]) -> None:
        viewers = summary_board().viewers
        counts = {race["id"]: viewers.total(race["id"]) for race in races}
        await self.send_message(MeetingStateMessage(target=target, races=races, viewers=counts))

    def stop_summaries(self, target: tuple[str, Any]) -> None:
        race_ids = self.summaries.pop(target, None)
        if race_ids is not None:
            summary_board().unwatch(self, race_ids)


@database_sync_to_async
def _race_ids_read(target: tuple[str, Any]) -> list[int]:
    name, value = target
    if name == "meeting_id":
        return race_ids_get(meeting_ids=[value])
    return race_ids_get(date=value)


@database_sync_to_async
def _meeting_exists(code: str) -> bool:
    return meeting_exists(code=code)


class NoSuchEndpointConsumer(AsyncWebsocketConsumer):
    """Any WebSocket path that is not a race's: closed with 4404 and a reason, logged by no one
    (a scanner's noise is not an operator's error)."""

    channel_layer_alias = None

    async def connect(self) -> None:
        await self.accept()
        path = self.scope.get("path", "")
        await self.close(
            code=CLOSE_NO_SUCH_ENDPOINT,
            reason=f"Not found: no WebSocket endpoint at {path[:40]!r}; a race is at /ws/races/{{race_id}}",
        )
