"""
What every WebSocket connection of this server shares, whatever it streams: the limits a client
cannot push past (connections per address, messages a second, message size, bytes queued for a
client that does not read), the lease that gives back everything a connection held however it
ends, reading a client's JSON text frames into validated messages, sending in order under the
same bound as live updates, and an unexpected error ending one connection with 1011 and a reason,
never the process or another client.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from functools import cached_property
from typing import Any, ClassVar

from channels.consumer import get_handler_name
from channels.exceptions import StopConsumer
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings

from live.protocol import daphne
from live.protocol.lease import ConnectionLease
from live.protocol.limits import MessageRateLimiter
from live.protocol.messages import (
    CLOSE_INTERNAL_ERROR,
    CLOSE_MESSAGE_TOO_BIG,
    CLOSE_TOO_MANY,
    CLOSE_TOO_SLOW,
    SLOW_CLIENT_REASON,
    ClientMessage,
    ErrorMessage,
    PongMessage,
    ServerMessage,
    encode,
)

logger = logging.getLogger(__name__)


class ProtocolConsumer(AsyncWebsocketConsumer):
    """A connection that reads validated JSON messages and sends frames under the server's limits.
    Subclasses say which messages they read (``client_messages``) and handle each (``handle``)."""

    # No channel of its own: updates reach this client through the process's fan-out
    # (live/protocol/fanout.py), one channel-layer member per process instead of per client.
    channel_layer_alias = None
    client_messages: ClassVar[type[ClientMessage]]

    accepted: bool = False
    # The client's connection is gone, or being closed by the server: nothing more is done for
    # it (a consumer killed with frames still queued would otherwise replay for a dead socket).
    gone: bool = False
    closing: asyncio.Future[None] | None = None
    rate_limiter: MessageRateLimiter | None = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        self.lease = ConnectionLease()
        self.scope = scope
        self.channel_layer = None
        self.base_send = send
        try:
            # Channels' own loop (await_many_dispatch) runs each receive() in a task of its own
            # and waits for it with asyncio.wait, to await a channel-layer channel beside it: 2.5
            # KiB a connection and a task per message for a consumer that has no such channel.
            while True:
                await self.dispatch(await receive())
        except StopConsumer:
            pass
        finally:
            # However the consumer ends, killed by the server (cancelled before its disconnect
            # ran) included, the connection's counts are given back.
            self.lease.release()

    def describe(self) -> str:
        """The connection as the log names it."""
        return "a WebSocket connection"

    # --- Connection ---------------------------------------------------------------------------

    async def admit(self) -> bool:
        """Count the connection against its address and set its limits; False: refused (4429)."""
        protocol = self.websocket_protocol
        daphne.on_connection_lost(protocol, self.connection_lost)
        address = (self.scope.get("client") or ("unknown", 0))[0]
        if not self.lease.count_address(address, limit=settings.WEBSOCKET_MAX_CONNECTIONS_PER_ADDRESS):
            await self.reject(
                CLOSE_TOO_MANY,
                f"Too many connections from your address: at most {settings.WEBSOCKET_MAX_CONNECTIONS_PER_ADDRESS}",
            )
            return False
        daphne.limit_send_buffer(protocol, settings.WEBSOCKET_SEND_BUFFER_BYTES)
        rate_per_s = settings.WEBSOCKET_MAX_MESSAGES_PER_S
        limiter = MessageRateLimiter(rate_per_s=rate_per_s, burst=max(1, int(2 * rate_per_s)))
        # Under Daphne frames are counted as they arrive, pings too; elsewhere as handled.
        if not daphne.guard_frames(
            protocol, allow=limiter.allow, code=CLOSE_TOO_MANY, reason=_too_many_messages_reason()
        ):
            self.rate_limiter = limiter
        return True

    def connection_lost(self) -> None:
        """The client's TCP connection is gone (Daphne says so, however it went)."""
        self.gone = True
        self.lease.release()

    async def accept(self, subprotocol: str | None = None, headers: Any = None) -> None:
        await super().accept(subprotocol, headers)
        self.accepted = True

    async def reject(self, code: int, reason: str) -> None:
        """Close with a code and reason the client can read (accepted first: else it sees 403),
        letting go at once of everything the connection held: it is served no more, whether or
        not the client ever answers the close."""
        self.gone = True
        if not self.accepted:
            await self.accept()
        await self.close(code=code, reason=reason)
        self.lease.release()

    def close_soon(self, code: int, reason: str) -> None:
        """Close from synchronous code (the fan-out), once."""
        if self.closing is None:
            self.gone = True
            self.closing = asyncio.ensure_future(self.reject(code, reason))

    async def disconnect(self, code: int) -> None:
        self.gone = True
        self.lease.release()

    # --- Client messages ----------------------------------------------------------------------

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if self.gone:
            return  # queued before the client went: nothing to answer
        if self.rate_limiter is not None and not self.rate_limiter.allow():
            await self.reject(CLOSE_TOO_MANY, _too_many_messages_reason())
            return
        if text_data is None:
            await self.send_error("binary frames are not supported; send JSON text frames")
            return
        if _utf8_length_exceeds(text_data, settings.WEBSOCKET_MAX_MESSAGE_BYTES):
            await self.reject(
                CLOSE_MESSAGE_TOO_BIG, f"Message too big: the limit is {settings.WEBSOCKET_MAX_MESSAGE_BYTES} bytes"
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
        incoming = self.client_messages(data=content)
        if not incoming.is_valid():
            await self.send_error(incoming.error_text())
            return
        message = incoming.validated_data
        if message["type"] == "ping":
            await self.send_message(PongMessage())
            return
        await self.handle(message)

    async def handle(self, message: dict[str, Any]) -> None:
        """Act on a valid client message other than ping."""
        raise NotImplementedError

    # --- Sending and failing ------------------------------------------------------------------

    @cached_property
    def websocket_protocol(self) -> Any:
        return daphne.websocket_protocol(self.base_send)

    async def send_frames(self, frames: list[str]) -> None:
        """Send frames in order, under the same bound as live updates: a client that does not
        read its replay is closed (4008) rather than buffered for without limit."""
        protocol = self.websocket_protocol
        for frame in frames:
            if self.gone:
                return
            if (
                protocol is not None
                and daphne.buffered_bytes(protocol.transport) > settings.WEBSOCKET_MAX_BUFFERED_BYTES
            ):
                self.gone = True
                logger.info("Closing %s that is not reading what it asked for", self.describe())
                daphne.close_slow_client(
                    protocol,
                    code=CLOSE_TOO_SLOW,
                    reason=SLOW_CLIENT_REASON,
                    grace_s=settings.WEBSOCKET_SLOW_CLOSE_GRACE_S,
                )
                self.lease.release()
                return
            await self.send(text_data=frame)

    async def send_message(self, message: ServerMessage) -> None:
        await self.send_frames([encode(message)])

    async def send_error(self, text: str, **fields: Any) -> None:
        await self.send_message(ErrorMessage(message=text, **fields))

    async def dispatch(self, message: dict[str, Any]) -> None:
        # An unexpected error ends this one connection with 1011 and a reason; it never
        # reaches Daphne (which would close without a reason) or any other client.
        try:
            # Channels' dispatch first runs close_old_connections on the thread that database work
            # shares (a thread hop for every message, queued behind the join reads of a connection
            # storm); this consumer reads the database only through database_sync_to_async, which
            # does that itself around each read.
            handler = getattr(self, get_handler_name(message), None)
            if handler is None:
                raise ValueError(f"No handler for message type {message['type']}")
            await handler(message)
        except StopConsumer:
            raise
        except Exception:
            logger.exception("Closing %s after an unexpected error handling %s", self.describe(), message.get("type"))
            if message.get("type") == "websocket.disconnect":
                raise StopConsumer() from None
            await self.reject(CLOSE_INTERNAL_ERROR, _internal_error_reason())


def _too_many_messages_reason() -> str:
    return f"Too many messages: at most {settings.WEBSOCKET_MAX_MESSAGES_PER_S:g} a second"


def _internal_error_reason() -> str:
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
