"""The ``/ws/races/{race_id}`` consumer: one client watching one race."""

from __future__ import annotations

import asyncio
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
    OddsUpdateMessage,
    PongMessage,
    ResultUpdateMessage,
    ServerMessage,
    SubscribedMessage,
    WSMessage,
    encode,
    odds_update_from_snapshot,
    result_update_from_starters,
    utc_timestamp,
)
from live.supervisor import simulation_supervisor
from races.selectors import RaceCard, race_card_get

logger = logging.getLogger(__name__)


@database_sync_to_async
def _race_card(race_id: int) -> RaceCard | None:
    return race_card_get(race_id=race_id)


def _join_state(race_id: int, card: RaceCard) -> JoinState:
    """Return what a joining client is sent: initial_state, then the result if declared, else the
    latest odds at once (a late joiner does not wait for the next update)."""
    frames = [encode(InitialStateMessage(race_id=race_id, card=card))]
    market = card["market"]
    update: OddsUpdateMessage | ResultUpdateMessage | None = None
    if market["result_declared_at"] is not None:
        update = result_update_from_starters(
            race_id=race_id, starters=card["starters"], declared_at=market["result_declared_at"]
        )
    elif market["latest_odds"] is not None:
        update = odds_update_from_snapshot(race_id=race_id, odds=market["latest_odds"], taken_at=market["latest_odds_at"])
    if update is not None:
        frames.append(encode(update))
    return JoinState(
        frames=frames,
        sent_up_to=utc_timestamp(update.timestamp) if update is not None else "",
        finished=market["result_declared_at"] is not None,
        fed=market["fed"],
        read_at=time.monotonic(),
    )


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
    ready: bool = False  # initial_state is sent: updates may go out
    address: str | None = None  # counted in connections_per_address while set
    subscribe_deadline: asyncio.TimerHandle | None = None
    watching: bool = False  # counted as a viewer by the simulation supervisor
    # The newest update this client has been sent; group events up to it are duplicates.
    sent_up_to: str = ""

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
        raw_race_id = self.scope["url_route"]["kwargs"]["race_id"]
        race_id = _path_race_id(raw_race_id)
        if race_id is None:
            await self.reject(CLOSE_RACE_NOT_FOUND, f"Race not found: {raw_race_id!r} is not a race id")
            return
        # Join before reading the race, so that no update published meanwhile is missed: it is
        # held until initial_state is out, and skipped if the read already had it.
        self.pending: list[dict[str, Any]] = []
        fanout = race_fanout()
        await fanout.subscribe(race_id, self)
        self.subscribed_to = race_id
        joining = fanout.join_state(race_id)
        if joining is None:
            generation = fanout.generation(race_id)
            card = await _race_card(race_id)
            if card is None:
                await self.leave_fanout()
                await self.reject(CLOSE_RACE_NOT_FOUND, f"Race not found: no race with id {race_id}")
                return
            joining = _join_state(race_id, card)
            fanout.remember(race_id, joining, read_in_generation=generation)
        self.race_id = race_id
        # Taken before sending: the shared join state may move on while the frames go out, and
        # an update it moves on to must then still be sent from this client's pending list.
        frames, self.sent_up_to = joining.frames, joining.sent_up_to
        await self.accept()
        for frame in frames:
            await self.send(text_data=frame)
        if settings.SIMULATION_ENABLED and not joining.fed and not joining.finished:
            simulation_supervisor().viewer_joined(race_id)
            self.watching = True
        self.ready = True
        held, self.pending = self.pending, []
        for event in held:
            await self.forward(event)
        # A connection that never subscribes is not kept forever.
        self.subscribe_deadline = asyncio.get_running_loop().call_later(
            settings.WEBSOCKET_SUBSCRIBE_TIMEOUT_S, self.subscribe_timed_out
        )

    def subscribe_timed_out(self) -> None:
        self.subscribe_deadline = None
        self.timeout_close = asyncio.ensure_future(
            self.close(
                code=CLOSE_SUBSCRIBE_TIMEOUT,
                reason=f"No subscribe within {settings.WEBSOCKET_SUBSCRIBE_TIMEOUT_S:g} s of connecting",
            )
        )

    async def leave_fanout(self) -> None:
        if self.subscribed_to is not None:
            race_id, self.subscribed_to = self.subscribed_to, None
            await race_fanout().unsubscribe(race_id, self)

    async def accept(self, subprotocol: str | None = None, headers: Any = None) -> None:
        await super().accept(subprotocol, headers)
        self.accepted = True

    async def reject(self, code: int, reason: str) -> None:
        """Close with a code and reason the client can read (accepted first: else it sees 403)."""
        if not self.accepted:
            await self.accept()
        await self.close(code=code, reason=reason)

    async def disconnect(self, code: int) -> None:
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
            await self.close(
                code=CLOSE_TOO_MANY,
                reason=f"Too many messages: at most {settings.WEBSOCKET_MAX_MESSAGES_PER_S:g} a second",
            )
            return
        if text_data is None:
            await self.send_error("binary frames are not supported; send JSON text frames")
            return
        if _utf8_length_exceeds(text_data, settings.WEBSOCKET_MAX_MESSAGE_BYTES):
            await self.close(
                code=CLOSE_MESSAGE_TOO_BIG,
                reason=f"Message too big: the limit is {settings.WEBSOCKET_MAX_MESSAGE_BYTES} bytes",
            )
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
        if incoming.validated_data["type"] == "ping":
            await self.send_message(PongMessage())
            return
        await self.subscribe(incoming.validated_data["race_id"])

    async def subscribe(self, race_id: int) -> None:
        if race_id != self.race_id:
            await self.send_error(
                f"race_id: this connection is for race {self.race_id}, not {race_id}; "
                f"connect to /ws/races/{race_id} for that race."
            )
            return
        if self.subscribe_deadline is not None:
            self.subscribe_deadline.cancel()
            self.subscribe_deadline = None
        await self.send_message(SubscribedMessage(race_id=race_id))

    # --- Updates from the race's fan-out (odds_update, result_update, encoded once) ----------

    @cached_property
    def websocket_protocol(self) -> Any:
        return daphne_fixes.websocket_protocol(self.base_send)

    def takes(self, event: dict[str, Any]) -> bool:
        if not self.ready:
            self.pending.append(event)
            return False
        # UTC ISO 8601 timestamps of one format compare in time order as strings.
        if event["timestamp"] <= self.sent_up_to:
            return False
        self.sent_up_to = event["timestamp"]
        return True

    async def forward(self, event: dict[str, Any]) -> None:
        if self.takes(event):
            await self.send(text_data=event["text"])

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

    # Say when the database is the trouble: the client should retry, the operator should look.
    if isinstance(sys.exc_info()[1], DatabaseError):
        return "Internal server error: the database is unavailable, try again shortly"
    return "Internal server error"


def _utf8_length_exceeds(text: str, limit_bytes: int) -> bool:
    # A character is 1-4 bytes in UTF-8: only encode when the length alone cannot decide.
    if len(text) > limit_bytes:
        return True
    if len(text) * 4 <= limit_bytes:
        return False
    return len(text.encode("utf-8", errors="surrogatepass")) > limit_bytes
