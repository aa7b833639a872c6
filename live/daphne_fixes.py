"""
Make Daphne close WebSockets the way docs/protocol.md promises.

Two gaps in Daphne 4.2, each fixed by wrapping one method of its WebSocket protocol; everything
else is Daphne's own code. Remove a fix once Daphne does it itself.

- The ``reason`` of an ASGI ``websocket.close`` is dropped (django/daphne#374): a client would see
  4004 with an empty reason. We send the close frame with its reason (and with codes such as 1011,
  which autobahn's sendClose refuses from applications).
- A protocol violation (a frame over the size limit, invalid UTF-8) makes autobahn drop the TCP
  connection without a close frame, because Daphne leaves ``failByDrop`` on: the client sees 1006
  and cannot tell why. We turn it off, so the client gets 1009 or 1007 with a reason.
"""

from __future__ import annotations

import socket

from typing import Any

# RFC 6455: a close frame's payload is at most 125 bytes, two of which carry the code.
MAX_CLOSE_REASON_BYTES = 123


def truncate_close_reason(reason: str) -> str:
    """Return the reason cut to what fits in a close frame, on a UTF-8 character boundary."""
    encoded = reason.encode("utf-8")[:MAX_CLOSE_REASON_BYTES]
    return encoded.decode("utf-8", errors="ignore")


def install() -> None:
    """Patch Daphne's WebSocket protocol once; do nothing where Daphne is not installed."""
    try:
        from daphne.ws_protocol import WebSocketProtocol
    except ImportError:  # served by another ASGI server, which closes properly itself
        return
    if getattr(WebSocketProtocol, "_racing_fixes_installed", False):
        return
    daphne_handle_reply = WebSocketProtocol.handle_reply
    daphne_on_connect = WebSocketProtocol.onConnect

    def handle_reply(self: Any, message: dict[str, Any]) -> None:
        if message.get("type") == "websocket.close" and self.state != self.STATE_CONNECTING:
            code = message.get("code") or 1000
            # sendCloseFrame, not sendClose: autobahn's sendClose accepts only 1000 and
            # 3000-4999 from applications, so it would refuse 1011 and 1009, which the
            # protocol uses and RFC 6455 lets a server send.
            reason = message.get("reason")
            reason_utf8 = truncate_close_reason(str(reason)).encode("utf-8") if reason else None
            self.sendCloseFrame(code=code, reasonUtf8=reason_utf8, isReply=False)
            return
        daphne_handle_reply(self, message)

    def on_connect(self: Any, request: Any) -> Any:
        # Autobahn copied the factory's options onto this connection just before this call.
        self.failByDrop = False
        return daphne_on_connect(self, request)

    WebSocketProtocol.handle_reply = handle_reply
    WebSocketProtocol.onConnect = on_connect
    WebSocketProtocol._racing_fixes_installed = True


def websocket_protocol(send: Any) -> Any | None:
    """
    Return the Daphne (autobahn) protocol object behind an ASGI ``send`` callable, or None.

    Daphne hands each application ``partial(server.handle_reply, protocol)``. The fan-out uses
    the protocol to send one prepared frame to every local client, as websockets.broadcast()
    does, instead of framing the same payload once per client through the ASGI send path.
    Under any other server (or a test communicator) this returns None and the ASGI path is used.
    """
    import functools

    if not isinstance(send, functools.partial) or not send.args:
        return None
    protocol = send.args[0]
    if not (hasattr(protocol, "sendPreparedMessage") and hasattr(protocol, "factory")):
        return None
    return protocol


def buffered_bytes(transport: Any) -> int:
    """Return the bytes a Twisted TCP transport holds for its peer, not yet taken by the kernel."""
    return len(getattr(transport, "dataBuffer", b"")) - getattr(transport, "offset", 0) + getattr(
        transport, "_tempDataLen", 0
    )


def send_prepared_frame(protocol: Any, prepared: Any) -> None:
    """
    Send a prepared WebSocket frame on a Daphne connection, writing straight to the socket when
    nothing is queued for it.

    Twisted's transport.write() only queues: the bytes go out on a later reactor turn, after two
    epoll registrations and a logging-context wrapper per socket, which for a race with thousands
    of clients cost more than everything else in a broadcast together. When the connection's
    outgoing buffer is empty (the normal case) the frame is sent now, as asyncio transports do;
    whatever the kernel does not take, and everything for a connection that already has data
    queued (a slow reader), goes through transport.write() so the order of bytes is kept.
    """
    transport = protocol.transport
    frame = prepared.payloadHybi
    if (
        protocol.state != protocol.STATE_OPEN
        or getattr(transport, "TLS", True)  # TLS (or an unknown transport): never bypass it
        or transport.disconnecting
        or getattr(transport, "dataBuffer", b"x")
        or getattr(transport, "_tempDataBuffer", [b"x"])
    ):
        if protocol.state == protocol.STATE_OPEN:
            protocol.sendPreparedMessage(prepared)
        return
    try:
        sent = transport.socket.send(frame)
    except (BlockingIOError, InterruptedError):
        sent = 0
    except OSError:
        return  # the connection is going; Twisted reports the close to the application
    if sent < len(frame):
        transport.write(frame[sent:])


def limit_send_buffer(protocol: Any, size_bytes: int) -> None:
    """
    Cap the kernel's send buffer of one Daphne connection at ``size_bytes``.

    Linux grows a TCP send buffer on its own up to net.ipv4.tcp_wmem's maximum (4 MiB here): a
    client that stops reading could hold that much kernel memory before the fan-out's own bound
    (WEBSOCKET_MAX_BUFFERED_BYTES) even starts to count. Updates are small and a phone needs a few
    KiB a second, so a fixed buffer costs no throughput and bounds each stalled client's memory to
    this plus the fan-out's bound.
    """
    if protocol is None or size_bytes <= 0:
        return
    transport = protocol.transport
    # A TCP transport's getHandle() is its socket; a TLS wrapper's is the TCP transport under it.
    handle = transport.getHandle() if hasattr(transport, "getHandle") else transport
    sock = handle if isinstance(handle, socket.socket) else getattr(handle, "socket", None)
    if not isinstance(sock, socket.socket):
        return
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, size_bytes)
    except OSError:
        pass  # the connection is already going
