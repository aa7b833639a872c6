"""The ``/ws/races/{race_id}`` consumer: one client watching one race."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import time
from functools import cached_property
from typing import Any

from channels.db import database_sync_to_async
from channels.exceptions import StopConsumer
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings

from live import daphne_fixes
from live.fanout import JoinState, race_fanout
from live.limits import MessageRateLimiter, connections_per_address
from live.messages import (
    CLOSE_INTERNAL_ERROR,
    CLOSE_MESSAGE_TOO_BIG,
    CLOSE_RACE_NOT_FOUND,
    CLOSE_SUBSCRIBE_TIMEOUT,
    CLOSE_TOO_MANY,
    ErrorMessage,
    InitialStateMessage,
    CLOSE_RACE_RESET,
    CLOSE_TOO_SLOW,
    PongMessage,
    ServerMessage,
    SubscribedMessage,
    WSMessage,
    encode,
    update_from_row,
)
from live.supervisor import simulation_supervisor
from races.selectors import RaceCard, RaceUpdateRow, race_card_get, race_updates_after

logger = logging.getLogger(__name__)


@database_sync_to_async
def _race_card(race_id: int) -> RaceCard | None:
    return race_card_get(race_id=race_id)


@database_sync_to_async
def _race_updates_after(race_id: int, after_seq: int, limit: int) -> list[RaceUpdateRow]:
    return race_updates_after(race_id=race_id, after_seq=after_seq, limit=limit)


def _join_state(race_id: int, card: RaceCard) -> JoinState:
    """Return what a joining client is sent: initial_state on connecting; on subscribing, the
    result if declared, else the latest odds (a late joiner does not wait for the next update)."""
    market = card["market"]
    latest = market["latest_update"]
    latest_frame = None
    # A result withdrawn in the admin (every placing cleared) is not news to a joiner.
    if latest is not None and (latest["kind"] == "result") == (market["result_declared_at"] is not None):
        latest_frame = encode(update_from_row(race_id=race_id, row=latest))
    return JoinState(
        initial_frame=encode(InitialStateMessage(race_id=race_id, card=card)),
        latest_frame=latest_frame,
        latest_seq=latest["seq"] if latest is not None else 0,
        epoch=market["updates_epoch"],
        finished=market["result_declared_at"] is not None,
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

    fanout = race_fanout()
    return fanout.join_state(race_id) or await fanout.read_join_state(race_id, read)


def _path_race_id(raw: str) -> int | None:
    # The route accepts any path segment so that a malformed id is answered with 4004 and a
    # reason instead of an HTTP 404 the client cannot read.
    if raw.isascii() and raw.isdigit() and len(raw) <= 18:
        return int(raw)
    return None


class RaceConsumer(AsyncWebsocketConsumer):
    # No channel of its own: the race's updates reach this client through the process's
    # fan-out (live/fanout.py), one channel-layer member per process instead of per client.
    channel_layer_alias = None

    race_id: int | None = None
    subscribed_to: int | None = None  # the race whose fan-out this client is in
    accepted: bool = False
    subscribed: bool = False
    # Updates go straight out only while streaming: before the client subscribes (and while a
    # subscribe is being answered) they are held, in order, and sent after the catch-up.
    streaming: bool = False
    address: str | None = None  # counted in connections_per_address while set
    subscribe_deadline: asyncio.TimerHandle | None = None
    watching: bool = False  # counted as a viewer by the simulation supervisor
    closing: asyncio.Future[None] | None = None
    # The numbering this client follows, and the newest update number it has (from the
    # database read on connecting, or sent since): fan-out events up to it are duplicates.
    epoch: str = ""
    sent_seq: int = 0
    held_up_to: int = 0

    # --- Connection ---------------------------------------------------------------------------

    async def connect(self) -> None:
        self.rate_limiter = MessageRateLimiter(
            rate_per_s=settings.WEBSOCKET_MAX_MESSAGES_PER_S, burst=max(1, int(2 * settings.WEBSOCKET_MAX_MESSAGES_PER_S))
        )
        address = (self.scope.get("client") or ("unknown", 0))[0]
        if not connections_per_address.acquire(address, limit=settings.WEBSOCKET_MAX_CONNECTIONS_PER_ADDRESS):
            await self.reject(
                CLOSE_TOO_MANY,
                f"Too many connections from your address: at most {settings.WEBSOCKET_MAX_CONNECTIONS_PER_ADDRESS}",
            )
            return
        self.address = address
        daphne_fixes.limit_send_buffer(self.websocket_protocol, settings.WEBSOCKET_SEND_BUFFER_BYTES)
        raw_race_id = self.scope["url_route"]["kwargs"]["race_id"]
        race_id = _path_race_id(raw_race_id)
        if race_id is None:
            await self.reject(CLOSE_RACE_NOT_FOUND, f"Race not found: {raw_race_id!r} is not a race id")
            return
        # Join before reading the race, so that no update published meanwhile is missed: it is
        # held until the client subscribes, and skipped if the read already had it.
        self.pending: list[dict[str, Any]] = []
        fanout = race_fanout()
        await fanout.subscribe(race_id, self)
        self.subscribed_to = race_id
        joining = await _current_join_state(race_id)
        if joining is None:
            await self.leave_fanout()
            await self.reject(CLOSE_RACE_NOT_FOUND, f"Race not found: no race with id {race_id}")
            return
        self.race_id = race_id
        # Kept as read: the shared join state moves on with later updates, which this client
        # holds in its pending list instead.
        self.joined = dataclasses.replace(joining)
        self.epoch, self.sent_seq = joining.epoch, joining.latest_seq
        await self.accept()
        await self.send(text_data=joining.initial_frame)
        if settings.SIMULATION_ENABLED and not joining.fed and not joining.finished:
            simulation_supervisor().viewer_joined(race_id)
            self.watching = True
        # A connection that never subscribes is not kept forever.
        self.subscribe_deadline = asyncio.get_running_loop().call_later(
            settings.WEBSOCKET_SUBSCRIBE_TIMEOUT_S, self.subscribe_timed_out
        )

    def subscribe_timed_out(self) -> None:
        self.subscribe_deadline = None
        self.close_soon(CLOSE_SUBSCRIBE_TIMEOUT, f"No subscribe within {settings.WEBSOCKET_SUBSCRIBE_TIMEOUT_S:g} s of connecting")

    def close_soon(self, code: int, reason: str) -> None:
        """Close from synchronous code (a timer, the fan-out), once."""
        if self.closing is None:
            self.closing = asyncio.ensure_future(self.reject(code, reason))

    async def leave_fanout(self) -> None:
        if self.subscribed_to is not None:
            race_id, self.subscribed_to = self.subscribed_to, None
            await race_fanout().unsubscribe(race_id, self)

    async def accept(self, subprotocol: str | None = None, headers: Any = None) -> None:
        await super().accept(subprotocol, headers)
        self.accepted = True

    async def reject(self, code: int, reason: str) -> None:
        """Close with a code and reason the client can read (accepted first: else it sees 403),
        letting go at once of everything the connection held: it is served no more, whether or
        not the client ever answers the close."""
        if not self.accepted:
            await self.accept()
        await self.close(code=code, reason=reason)
        await self.release()

    async def disconnect(self, code: int) -> None:
        await self.release()

    async def release(self) -> None:
        """Give back what the connection holds: its address count, its viewing, its fan-out place."""
        if self.subscribe_deadline is not None:
            self.subscribe_deadline.cancel()
            self.subscribe_deadline = None
        if self.address is not None:
            connections_per_address.release(self.address)
            self.address = None
        if self.watching:
            simulation_supervisor().viewer_left(self.race_id)
            self.watching = False
        await self.leave_fanout()

    # --- Client messages ----------------------------------------------------------------------

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if not self.rate_limiter.allow():
            await self.reject(CLOSE_TOO_MANY, f"Too many messages: at most {settings.WEBSOCKET_MAX_MESSAGES_PER_S:g} a second")
            return
        if text_data is None:
            await self.send_error("binary frames are not supported; send JSON text frames")
            return
        if _utf8_length_exceeds(text_data, settings.WEBSOCKET_MAX_MESSAGE_BYTES):
            await self.reject(CLOSE_MESSAGE_TOO_BIG, f"Message too big: the limit is {settings.WEBSOCKET_MAX_MESSAGE_BYTES} bytes")
            return
        try:
            content = json.loads(text_data)
        except (ValueError, RecursionError):
            await self.send_error("invalid JSON")
            return
        if not isinstance(content, dict):
            await self.send_error("a message must be a JSON object")
            return
        incoming = WSMessage(data=content)
        if not incoming.is_valid():
            await self.send_error(incoming.error_text())
            return
        message = incoming.validated_data
        if message["type"] == "ping":
            await self.send_message(PongMessage())
            return
        await self.subscribe(message["race_id"], last_seq=message.get("last_seq"), epoch=message.get("epoch"))

    async def subscribe(self, race_id: int, *, last_seq: int | None, epoch: str | None) -> None:
        """Answer subscribe: ``subscribed``, then what the client lacks in order (the latest update;
        or, resuming after ``last_seq``, every update it missed; or, when it cannot resume, the
        race afresh), then the updates held meanwhile, then live ones."""
        if race_id != self.race_id:
            await self.send_error(
                f"race_id: this connection is for race {self.race_id}, not {race_id}; "
                f"connect to /ws/races/{race_id} for that race."
            )
            return
        if self.subscribe_deadline is not None:
            self.subscribe_deadline.cancel()
            self.subscribe_deadline = None
        if last_seq is None and self.subscribed:
            await self.send_message(SubscribedMessage(race_id=race_id, epoch=self.epoch, seq=self.sent_seq))
            return
        self.streaming = False
        resumed: bool | None = None
        if last_seq is None:
            frames = [self.joined.latest_frame] if self.joined.latest_frame is not None else []
        else:
            replay = await self.missed_since(last_seq, epoch)
            resumed = replay is not None
            frames = replay if replay is not None else await self.afresh()
            if frames is None:
                await self.reject(CLOSE_RACE_NOT_FOUND, f"Race not found: race {race_id} was deleted")
                return
        self.subscribed = True
        newest = max([self.sent_seq] + [event["seq"] for event in self.pending if event["epoch"] == self.epoch])
        await self.send_message(SubscribedMessage(race_id=race_id, epoch=self.epoch, seq=newest, resumed=resumed))
        for frame in frames:
            await self.send(text_data=frame)
        await self.send_held()

    async def missed_since(self, last_seq: int, epoch: str | None) -> list[str] | None:
        """Return the updates after ``last_seq`` that the client lacks and is not holding, or None
        if they cannot be had: another epoch, a seq the race's log never reached, or too far
        behind."""
        if epoch is not None and epoch != self.epoch:
            return None
        if self.sent_seq <= last_seq <= self.seen_seq:
            self.sent_seq = last_seq  # it has all the database read had; the rest are held
            return []
        if self.sent_seq - last_seq > settings.WEBSOCKET_RESUME_MAX_UPDATES:
            return None
        # From the log: the updates it missed, or, when it has seen further than this process
        # has heard (updates another process sent whose broadcast has not arrived here yet),
        # those after what it has. The log must run without a gap and must reach last_seq.
        after = min(last_seq, self.sent_seq)
        rows = await _race_updates_after(self.race_id, after, last_seq - after + settings.WEBSOCKET_RESUME_MAX_UPDATES + 1)
        seqs = [row["seq"] for row in rows]
        replay = [row for row in rows if row["seq"] > last_seq]
        if seqs != list(range(after + 1, after + 1 + len(seqs))) or after + len(seqs) < max(last_seq, self.sent_seq):
            return None  # never reached (or the race was reset meanwhile)
        if len(replay) > settings.WEBSOCKET_RESUME_MAX_UPDATES:
            return None
        self.sent_seq = after + len(seqs)
        return [encode(update_from_row(race_id=self.race_id, row=row)) for row in replay]

    async def afresh(self) -> list[str] | None:
        """Return the race as a client that cannot resume is sent it: initial_state and the
        newest update (as read on connecting, before the first subscribe; read again after)."""
        if self.subscribed:
            joining = await _current_join_state(self.race_id)
            if joining is None:
                return None
            self.joined = dataclasses.replace(joining)
            self.epoch, self.sent_seq = joining.epoch, joining.latest_seq
        frames = [self.joined.initial_frame]
        if self.joined.latest_frame is not None:
            frames.append(self.joined.latest_frame)
        return frames

    async def send_held(self) -> None:
        """Send the updates held while the client was not streaming, then stream."""
        while self.pending:
            held, self.pending = self.pending, []
            for event in held:
                if event["epoch"] != self.epoch:
                    self.race_was_reset()
                    return
                if event["seq"] > self.sent_seq:
                    self.sent_seq = event["seq"]
                    await self.send(text_data=event["text"])
        self.held_up_to = 0
        self.streaming = True

    # --- Updates from the race's fan-out (odds_update, result_update, encoded once) ----------

    @cached_property
    def websocket_protocol(self) -> Any:
        return daphne_fixes.websocket_protocol(self.base_send)

    def race_was_reset(self) -> None:
        # The race's updates were numbered afresh: what this client holds is of the old history.
        # It reconnects, and is sent the race anew.
        self.close_soon(CLOSE_RACE_RESET, "The race was reset: reconnect for its new state")

    @property
    def seen_seq(self) -> int:
        return max(self.sent_seq, self.held_up_to)

    def takes(self, event: dict[str, Any]) -> bool:
        if not self.streaming:
            if len(self.pending) >= settings.WEBSOCKET_MAX_HELD_UPDATES:
                self.close_soon(CLOSE_TOO_SLOW, "Client too slow: it did not subscribe while updates came")
                return False
            self.pending.append(event)
            self.held_up_to = max(self.held_up_to, event["seq"])
            return False
        if event["epoch"] != self.epoch:
            self.race_was_reset()
            return False
        if event["seq"] <= self.sent_seq:
            return False
        self.sent_seq = event["seq"]
        return True

    # --- Sending and failing ------------------------------------------------------------------

    async def send_message(self, message: ServerMessage) -> None:
        await self.send(text_data=encode(message))

    async def send_error(self, text: str) -> None:
        await self.send_message(ErrorMessage(message=text))

    async def dispatch(self, message: dict[str, Any]) -> None:
        # An unexpected error ends this one connection with 1011 and a reason; it never
        # reaches Daphne (which would close without a reason) or any other client.
        try:
            await super().dispatch(message)
        except StopConsumer:
            raise
        except Exception:
            logger.exception(
                "Closing race %s connection after an unexpected error handling %s",
                self.race_id,
                message.get("type"),
            )
            if message.get("type") == "websocket.disconnect":
                raise StopConsumer() from None
            await self.reject(CLOSE_INTERNAL_ERROR, _internal_error_reason())


def _internal_error_reason() -> str:
    import sys

    from django.db import DatabaseError

    # Say when the database or Redis is the trouble: the client should retry, the operator look.
    error = sys.exc_info()[1]
    if isinstance(error, DatabaseError):
        return "Internal server error: the database is unavailable, try again shortly"
    if type(error).__module__.startswith(("redis", "channels_redis")):
        return "Internal server error: live updates are unavailable, try again shortly"
    return "Internal server error"


def _utf8_length_exceeds(text: str, limit_bytes: int) -> bool:
    # A character is 1-4 bytes in UTF-8: only encode when the length alone cannot decide.
    if len(text) > limit_bytes:
        return True
    if len(text) * 4 <= limit_bytes:
        return False
    return len(text.encode("utf-8", errors="surrogatepass")) > limit_bytes
