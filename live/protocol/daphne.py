"""
The one adapter over Daphne, Twisted and autobahn internals: everything this project does with
them that their public APIs do not offer goes through here, and nowhere else reaches into them.

What it adds, each wrapping one method of Daphne's protocols (everything else is Daphne's code):

- Close reasons (django/daphne#374: the ``reason`` of an ASGI ``websocket.close`` is dropped),
  close codes such as 1011 that autobahn's ``sendClose`` refuses from applications, a close frame
  instead of a dropped TCP connection on a protocol violation (Daphne leaves ``failByDrop`` on),
  and 1009's documented reason.
- A connection's end, however it comes (``on_connection_lost``): a consumer Daphne kills ("took
  too long to shut down") never runs ``disconnect``, so what a connection counts is given back
  when its TCP connection goes.
- Frames counted against the client's rate limit as they arrive, pings included
  (``guard_frames``), not when the consumer gets round to them.
- The fan-out's fast path: one prepared frame written straight to each socket
  (``send_prepared_frame``), the bytes a connection has queued (``buffered_bytes``) for the
  slow-client bound, a capped kernel send buffer, and a slow client's close frame given time to
  arrive (``close_slow_client``).
- HTTP request limits before the application sees a request (``HttpRequestGuard``): a body over
  ``HTTP_MAX_BODY_BYTES`` answered 413 without being buffered, a deadline for request headers, a
  cap on one address's unfinished requests (slowloris).
- Less held per connection (issue 16): the WebSocket options shared from one class instead of
  copied into every connection (``_share_options``), a light input queue instead of an
  ``asyncio.Queue`` (``InputQueue``), and the HTTP channel that carried the upgrade let go of
  (``_release_upgraded_channel``): about 8 KiB of the 26 KiB a connection held.

The private things it relies on (Daphne's ``send`` being ``partial(server.handle_reply,
protocol)`` and its ``create_application`` as copied here; Twisted's ``dataBuffer``, ``offset``,
``_tempDataBuffer``, ``_tempDataLen``; autobahn's ``PreparedMessage.payloadHybi``,
``_max_message_size_exceeded``, ``_fail_connection``, its ``failByDrop`` and
``closeHandshakeTimeout`` options and ``_connectionMade`` copying only options not already set) are checked by ``verify()`` against
the installed libraries when the process starts (``install()``). Their versions are locked in
requirements.txt, and tests/test_daphne_adapter.py runs the check against them.

If a check fails, the server still serves (a racing club's race day matters more than the fast
path): the feature that needs it is switched off, with an ERROR in the log at start, and
``/healthz`` lists it under ``degraded``. Without the fast path every frame goes through Daphne's
ASGI send; without the buffer reading a slow client is bounded by its kernel send buffer only.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import inspect
import json
import logging
import pprint
import socket
from collections import deque
from collections.abc import Callable
from typing import Any

logger = logging.getLogger(__name__)

# RFC 6455: a close frame's payload is at most 125 bytes, two of which carry the code.
MAX_CLOSE_REASON_BYTES = 123

# The adapter's features, each switched off by itself if what it relies on is missing.
FAST_PATH = "fast path"
CLOSE_FIXES = "close codes and reasons"
FRAME_GUARD = "frames counted as they arrive"
CONNECTION_LOST = "counts given back when the connection goes"
HTTP_LIMITS = "HTTP request limits"
SHARED_OPTIONS = "options shared by every connection"
INPUT_QUEUE = "a light input queue per connection"

# Daphne's Server.create_application as this adapter copied it (with InputQueue for its
# asyncio.Queue): the copy is used only while the installed Daphne's is exactly this.
DAPHNE_CREATE_APPLICATION_SHA256 = "f1e300b4ecf636c85e1a66250e32af2ebb67728f01919678d43e80c794a79a87"

_off: dict[str, str] = {}  # feature -> why it is off, from install()


def truncate_close_reason(reason: str) -> str:
    """Return the reason cut to what fits in a close frame, on a UTF-8 character boundary."""
    encoded = reason.encode("utf-8")[:MAX_CLOSE_REASON_BYTES]
    return encoded.decode("utf-8", errors="ignore")


def _missing(owner: Any, *names: str) -> list[str]:
    return [f"{getattr(owner, '__qualname__', owner)}.{name}" for name in names if not hasattr(owner, name)]


def verify() -> dict[str, str]:
    """Return the features whose internals the installed Daphne, Twisted or autobahn lack, with
    what is missing; empty when everything this adapter relies on is there (or Daphne is not
    installed: another ASGI server is served through the ASGI interface alone)."""
    try:
        from autobahn.websocket.protocol import PreparedMessage, WebSocketServerProtocol
        from daphne.http_protocol import HTTPFactory, WebRequest
        from daphne.server import Server
        from daphne.ws_protocol import WebSocketFactory, WebSocketProtocol
        from twisted.internet import abstract, tcp
        from twisted.web import http
    except ImportError:
        return {}
    problems: dict[str, list[str]] = {}
    options = set(getattr(WebSocketServerProtocol, "CONFIG_ATTRS", ()))

    fast_path = (
        _missing(WebSocketProtocol, "sendPreparedMessage", "STATE_OPEN")
        + _missing(abstract.FileDescriptor, "dataBuffer", "offset", "disconnecting")
        + _missing(tcp.Connection, "TLS")
    )
    try:
        daphnes_create_application = getattr(Server.create_application, "_racing_daphnes", Server.create_application)
        if "partial(self.handle_reply, protocol)" not in inspect.getsource(daphnes_create_application):
            fast_path.append("Server.create_application's send as partial(self.handle_reply, protocol)")
        descriptor_init = inspect.getsource(abstract.FileDescriptor.__init__)
        if "_tempDataBuffer" not in descriptor_init or "_tempDataLen" not in descriptor_init:
            fast_path.append("FileDescriptor._tempDataBuffer and _tempDataLen")
        if "self.socket" not in inspect.getsource(tcp.Connection.__init__):
            fast_path.append("Connection.socket")
    except (OSError, TypeError):
        fast_path.append("the source of Daphne's and Twisted's classes cannot be read")
    if not hasattr(PreparedMessage(b"x", False, False, True), "payloadHybi"):
        fast_path.append("PreparedMessage.payloadHybi")
    if "closeHandshakeTimeout" not in options:
        fast_path.append("the closeHandshakeTimeout option")
    problems[FAST_PATH] = fast_path
    problems[CLOSE_FIXES] = _missing(
        WebSocketProtocol, "handle_reply", "onConnect", "sendCloseFrame", "_max_message_size_exceeded", "_fail_connection",
        "STATE_CONNECTING",
    ) + ([] if "failByDrop" in options else ["the failByDrop option"])  # fmt: skip
    problems[FRAME_GUARD] = _missing(WebSocketProtocol, "onMessage", "onPing")
    problems[CONNECTION_LOST] = _missing(WebSocketProtocol, "connectionLost", "STATE_CLOSED")
    problems[HTTP_LIMITS] = (
        _missing(HTTPFactory, "buildProtocol")
        + _missing(WebRequest, "gotLength", "handleContentChunk", "process")
        + _missing(abstract.FileDescriptor, "producer", "unregisterProducer")
        + _missing(http.HTTPChannel, "setTimeout")
    )
    problems[SHARED_OPTIONS] = _missing(WebSocketFactory, "buildProtocol", "protocol") + (
        [] if options else ["WebSocketServerProtocol.CONFIG_ATTRS"]
    )
    try:
        from autobahn.websocket import protocol as autobahn_protocol

        connection_made = inspect.getsource(autobahn_protocol.WebSocketProtocol._connectionMade)
        if "if not hasattr(self, configAttr)" not in connection_made or "pformat(configAttrLog)" not in connection_made:
            problems[SHARED_OPTIONS].append("WebSocketProtocol._connectionMade copying options unless already set")
        if not callable(getattr(autobahn_protocol, "pformat", None)):
            problems[SHARED_OPTIONS].append("autobahn.websocket.protocol.pformat")
    except (OSError, TypeError, AttributeError):
        problems[SHARED_OPTIONS].append("the source of autobahn's WebSocketProtocol cannot be read")
    create_application = getattr(Server.create_application, "_racing_daphnes", Server.create_application)
    try:
        source = inspect.getsource(create_application)
        if hashlib.sha256(source.encode()).hexdigest() != DAPHNE_CREATE_APPLICATION_SHA256:
            problems[INPUT_QUEUE] = ["Server.create_application as this adapter copied it"]
    except (OSError, TypeError):
        problems[INPUT_QUEUE] = ["the source of Daphne's Server.create_application cannot be read"]
    return {feature: "; ".join(missing) for feature, missing in problems.items() if missing}


def install() -> None:
    """Check the internals this adapter relies on and patch Daphne's WebSocket and HTTP protocols
    once, each feature only if what it needs is there; do nothing where Daphne is not installed."""
    try:
        from daphne.http_protocol import HTTPFactory, WebRequest
        from daphne.ws_protocol import WebSocketProtocol
    except ImportError:  # served by another ASGI server, which closes properly itself
        return
    if getattr(WebSocketProtocol, "_racing_fixes_installed", False):
        return
    _off.clear()
    _off.update(verify())
    for feature, missing in _off.items():
        logger.error("Daphne adapter: %s switched off, the installed libraries lack: %s", feature, missing)

    if CLOSE_FIXES not in _off:
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
            if message.get("type") == "websocket.send" and self.state not in (self.STATE_OPEN, self.STATE_CONNECTING):
                return  # closing: nothing more goes out (autobahn would raise)
            daphne_handle_reply(self, message)

        def on_connect(self: Any, request: Any) -> Any:
            # Autobahn copied the factory's options onto this connection just before this call.
            self.failByDrop = False
            return daphne_on_connect(self, request)

        def max_message_size_exceeded(self: Any, msg_size: int, max_msg_size: int, reason: str) -> None:
            self._fail_connection(1009, f"Message too big: the limit is {max_msg_size} bytes")

        WebSocketProtocol.handle_reply = handle_reply
        WebSocketProtocol.onConnect = on_connect
        WebSocketProtocol._max_message_size_exceeded = max_message_size_exceeded

    if FRAME_GUARD not in _off:
        daphne_on_message = WebSocketProtocol.onMessage
        autobahn_on_ping = WebSocketProtocol.onPing

        def on_message(self: Any, payload: bytes, is_binary: bool) -> None:
            if self.state != self.STATE_OPEN or not _frame_allowed(self):
                return  # closing (for this flood, or otherwise): the application is not fed more
            daphne_on_message(self, payload, is_binary)

        def on_ping(self: Any, payload: bytes) -> None:
            if _frame_allowed(self):
                autobahn_on_ping(self, payload)

        WebSocketProtocol.onMessage = on_message
        WebSocketProtocol.onPing = on_ping

    if CONNECTION_LOST not in _off:
        daphne_connection_lost = WebSocketProtocol.connectionLost

        def connection_lost(self: Any, reason: Any) -> None:
            try:
                daphne_connection_lost(self, reason)
            finally:
                self._racing_lost = True
                self.__dict__.pop("_racing_frame_guard", None)  # a closure over self: free the cycle now
                for callback in self.__dict__.pop("_racing_on_lost", ()):
                    try:
                        callback()
                    except Exception:
                        logger.exception("Releasing a closed WebSocket connection's resources failed")

        WebSocketProtocol.connectionLost = connection_lost

    WebSocketProtocol._racing_fixes_installed = True
    if HTTP_LIMITS not in _off:
        HttpRequestGuard.install(HTTPFactory, WebRequest)
    if SHARED_OPTIONS not in _off:
        _share_options()
    if INPUT_QUEUE not in _off:
        _light_input_queues()


class InputQueue:
    """A connection's ASGI input queue, as Daphne uses it (``put_nowait`` from Twisted, ``get``
    as the application's ``receive``), at a third of ``asyncio.Queue``'s memory: one slot for
    the items and one for a waiting ``get``, where ``asyncio.Queue`` keeps four deques and an
    Event for every connection (2.5 KiB more, issue 16). Unbounded, like Daphne's: the frame
    guard bounds what a client can put in it."""

    __slots__ = ("_items", "_waiter")

    def __init__(self) -> None:
        self._items: deque[Any] | None = None  # made on the first item, dropped when emptied
        self._waiter: asyncio.Future[None] | None = None  # shared by whoever waits in get()

    def qsize(self) -> int:
        return len(self._items) if self._items else 0

    def empty(self) -> bool:
        return not self._items

    def put_nowait(self, item: Any) -> None:
        if self._items is None:
            self._items = deque()
        self._items.append(item)
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def get(self) -> Any:
        while not self._items:
            waiter = self._waiter
            if waiter is None or waiter.done():
                waiter = self._waiter = asyncio.get_running_loop().create_future()
            try:
                await waiter
            except asyncio.CancelledError:
                task = asyncio.current_task()
                if task is not None and task.cancelling():
                    raise
                # Another waiter was cancelled, and with it the future they shared: wait again.
        items = self._items
        item = items.popleft()
        if not items:
            self._items = None
        return item


def _light_input_queues() -> None:
    from daphne.server import Server

    daphnes = Server.create_application

    def create_application(self: Any, protocol: Any, scope: dict[str, Any]) -> InputQueue | None:
        # Daphne's own (DAPHNE_CREATE_APPLICATION_SHA256), with InputQueue for asyncio.Queue.
        assert "application_instance" not in self.connections[protocol]  # noqa: S101 - Daphne's
        input_queue = InputQueue()
        scope.setdefault("asgi", {"version": "3.0"})
        application_instance = self.application(
            scope=scope,
            receive=input_queue.get,
            send=functools.partial(self.handle_reply, protocol),
        )
        if protocol not in self.connections:
            return None
        self.connections[protocol]["application_instance"] = asyncio.ensure_future(
            application_instance,
            loop=asyncio.get_event_loop(),
        )
        return input_queue

    create_application._racing_daphnes = daphnes  # type: ignore[attr-defined]
    Server.create_application = create_application


class _LazyFormat:
    """What autobahn's debug line formats, formatted only if that line is ever written."""

    __slots__ = ("value",)

    def __init__(self, value: object) -> None:
        self.value = value

    def __str__(self) -> str:
        return pprint.pformat(self.value)


def _share_options() -> None:
    """Give every connection of a factory its options from one class, not copies of its own.

    Autobahn copies about 30 options from the factory into each connection's ``__dict__`` unless
    the connection already has them (3 KiB a connection), then formats them all with ``pformat``
    for a debug line that is written only at debug level (4 % of a connection storm's CPU). Here a
    factory's first connection makes a subclass holding the factory's options as class attributes
    (Daphne sets them once, before serving), so that autobahn finds them and copies nothing; an
    option a connection sets for itself (``failByDrop``) still goes into its own dictionary."""
    from autobahn.websocket import protocol as autobahn_protocol
    from daphne.ws_protocol import WebSocketFactory

    setattr(autobahn_protocol, "pformat", _LazyFormat)  # noqa: B010 - a module's name, replaced
    # The one use of that name that must give a str at once (only with trackTimings on).
    autobahn_protocol.Timings.__str__ = lambda timings: pprint.pformat(timings._timings)  # type: ignore[method-assign]
    daphne_build_protocol = WebSocketFactory.buildProtocol

    def build_protocol(self: Any, addr: Any) -> Any:
        shared = self.__dict__.get("_racing_shared_protocol")
        if shared is None:
            base = self.protocol
            options = {}
            for name in base.CONFIG_ATTRS:
                value = getattr(self, name)
                # A function as a class attribute would become a method, called with the
                # connection as an extra first argument (perMessageCompressionAccept is one).
                options[name] = staticmethod(value) if inspect.isfunction(value) else value
            shared = type(f"{base.__name__}WithSharedOptions", (base,), options)
            self._racing_shared_protocol = shared
            self.protocol = shared
        return daphne_build_protocol(self, addr)

    WebSocketFactory.buildProtocol = build_protocol


def adapter_health() -> dict[str, list[str]]:
    """Return what of this adapter is switched off, for /healthz (empty: all of it works)."""
    return {"degraded": [f"{feature}: {missing}" for feature, missing in sorted(_off.items())]}


def http_requests_pending() -> int:
    """Return how many connections have a first HTTP request not complete yet (slowloris)."""
    guard = HttpRequestGuard._current
    return guard.pending_total if guard is not None else 0


def _frame_allowed(protocol: Any) -> bool:
    guard = getattr(protocol, "_racing_frame_guard", None)
    return guard is None or guard()


def on_connection_lost(protocol: Any, callback: Callable[[], None]) -> bool:
    """Call ``callback`` once the connection's TCP transport is gone, however it went (close,
    abort, the peer vanishing, the consumer killed); return False where that cannot be known
    (not under Daphne), leaving the consumer's own ``disconnect`` as the only signal."""
    if protocol is None or not hasattr(protocol, "_racing_fixes_installed") or CONNECTION_LOST in _off:
        return False
    if getattr(protocol, "_racing_lost", False):
        callback()  # already gone
    else:
        protocol.__dict__.setdefault("_racing_on_lost", []).append(callback)
    return True


def guard_frames(protocol: Any, *, allow: Callable[[], bool], code: int, reason: str) -> bool:
    """
    Count every frame the client sends (messages and pings) against ``allow()`` as it arrives;
    the first refused closes the connection with ``code`` and ``reason`` and nothing more of it
    reaches the application. Return False where frames cannot be seen (not under Daphne).
    """
    if protocol is None or not hasattr(protocol, "_racing_fixes_installed") or FRAME_GUARD in _off:
        return False
    refused = False

    def guard() -> bool:
        nonlocal refused
        if refused:
            return False
        if allow():
            return True
        refused = True
        if protocol.state == protocol.STATE_OPEN:
            protocol.sendCloseFrame(code=code, reasonUtf8=truncate_close_reason(reason).encode("utf-8"), isReply=False)
        return False

    protocol._racing_frame_guard = guard
    return True


def close_slow_client(protocol: Any, *, code: int, reason: str, grace_s: float) -> None:
    """
    Close a client that stopped reading, the close frame queued behind the bytes already on
    their way. Autobahn would drop (reset) the connection one second after its close frame,
    throwing away what the kernel still holds, so a client that starts reading again soon after
    would never see why it was closed: it gets ``grace_s`` to read the lot, close frame last.
    Nothing more is queued meanwhile (the connection is closing), so the bound holds.
    """
    if protocol.state != protocol.STATE_OPEN:
        return
    protocol.closeHandshakeTimeout = grace_s
    protocol.sendCloseFrame(code=code, reasonUtf8=truncate_close_reason(reason).encode("utf-8"), isReply=False)


def websocket_protocol(send: Any) -> Any | None:
    """
    Return the Daphne (autobahn) protocol object behind an ASGI ``send`` callable, or None.

    Daphne hands each application ``partial(server.handle_reply, protocol)``. The fan-out uses
    the protocol to send one prepared frame to every local client, as websockets.broadcast()
    does, instead of framing the same payload once per client through the ASGI send path.
    Under any other server (or a test communicator) this returns None and the ASGI path is used.
    """
    if FAST_PATH in _off or not isinstance(send, functools.partial) or not send.args:
        return None
    protocol = send.args[0]
    if not (hasattr(protocol, "sendPreparedMessage") and hasattr(protocol, "factory")):
        return None
    return protocol


def buffered_bytes(transport: Any) -> int:
    """Return the bytes a Twisted TCP transport holds for its peer, not yet taken by the kernel."""
    return (
        len(getattr(transport, "dataBuffer", b""))
        - getattr(transport, "offset", 0)
        + getattr(transport, "_tempDataLen", 0)
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


# --- HTTP requests before the application sees them --------------------------------------------


def _http_response(status: str, detail: str) -> bytes:
    body = json.dumps({"detail": detail}).encode("utf-8")
    head = (
        f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        "Connection: close\r\n\r\n"
    )
    return head.encode("ascii") + body


class HttpRequestGuard:
    """
    This process's bounds on HTTP requests as Daphne reads them (docs/reliability.md, limits).

    - A body over ``max_body_bytes`` (by its Content-Length, or as a chunked body grows past it)
      is answered 413 and the connection closed; what was read of it is thrown away.
    - A request's headers must be complete within ``headers_timeout_s`` of the connection
      opening (or of the request's first line, on a kept-alive connection): 408 otherwise.
    - One address may hold at most ``max_pending_per_address`` connections whose first request
      is incomplete; past that a new connection from it is answered 429 at once.
    """

    _current: HttpRequestGuard | None = None

    def __init__(self, *, max_body_bytes: int, headers_timeout_s: float, max_pending_per_address: int) -> None:
        from live.protocol.limits import CountsPerAddress

        self.max_body_bytes = max_body_bytes
        self.headers_timeout_s = headers_timeout_s
        self.max_pending_per_address = max_pending_per_address
        self.pending = CountsPerAddress()

    @classmethod
    def current(cls) -> HttpRequestGuard:
        if cls._current is None:
            from django.conf import settings

            cls._current = cls(
                max_body_bytes=settings.HTTP_MAX_BODY_BYTES,
                headers_timeout_s=settings.HTTP_HEADERS_TIMEOUT_S,
                max_pending_per_address=settings.HTTP_MAX_PENDING_PER_ADDRESS,
            )
        return cls._current

    @property
    def pending_total(self) -> int:
        return self.pending.total

    # --- Connections whose first request is not in yet (slowloris) ---------------------------

    def admit(self, address: str) -> bool:
        return self.pending.acquire(address, limit=self.max_pending_per_address)

    def release(self, address: str) -> None:
        self.pending.release(address)

    @classmethod
    def install(cls, http_factory: Any, web_request: Any) -> None:
        daphne_build_protocol = http_factory.buildProtocol
        daphne_got_length = web_request.gotLength
        daphne_handle_content_chunk = web_request.handleContentChunk
        daphne_process = web_request.process
        daphne_request_init = web_request.__init__

        def build_protocol(self: Any, addr: Any) -> Any:
            guard = cls.current()
            address = getattr(addr, "host", None)
            if address is not None and not guard.admit(address):
                return _Refusal(_http_response("429 Too Many Requests", (
                    f"Too many unfinished requests from your address: at most {guard.max_pending_per_address}"
                )))  # fmt: skip
            protocol = daphne_build_protocol(self, addr)
            if address is not None:
                _PendingRequest(guard, address).watch(protocol)
            return protocol

        def request_init(self: Any, *args: Any, **kwargs: Any) -> None:
            daphne_request_init(self, *args, **kwargs)
            pending = _PendingRequest.of(self)
            if pending is not None:
                pending.next_request()

        def got_length(self: Any, length: int | None) -> None:
            pending = _PendingRequest.of(self)
            if pending is not None:
                pending.headers_done()
            self._racing_body_bytes = 0
            limit = cls.current().max_body_bytes
            if length is not None and length > limit:
                _refuse_body(self, limit)
                return
            daphne_got_length(self, length)

        def handle_content_chunk(self: Any, data: bytes) -> None:
            if getattr(self, "_racing_refused", False):
                return
            self._racing_body_bytes = getattr(self, "_racing_body_bytes", 0) + len(data)
            limit = cls.current().max_body_bytes
            if self._racing_body_bytes > limit:
                _refuse_body(self, limit)
                return
            daphne_handle_content_chunk(self, data)

        def process(self: Any) -> Any:
            if getattr(self, "_racing_refused", False):
                return None  # answered 413 already: the application never sees it
            result = daphne_process(self)
            if self.transport is None:  # Daphne handed the connection to a WebSocket protocol
                _release_upgraded_channel(self.channel)
            return result

        http_factory.buildProtocol = build_protocol
        web_request.__init__ = request_init
        web_request.gotLength = got_length
        web_request.handleContentChunk = handle_content_chunk
        web_request.process = process


def _release_upgraded_channel(channel: Any) -> None:
    """Let go of the HTTP channel that carried a WebSocket upgrade, with its request and headers
    (about 3 KiB, issue 16). Daphne moves the TCP connection to the WebSocket protocol, but the
    channel stays registered as the connection's producer for as long as it lasts, and with it
    its request, the request's headers and a timeout. The WebSocket protocol needs none of them:
    the scope has its own copy of the headers."""
    transport = getattr(channel, "transport", None)
    if transport is None or getattr(transport, "protocol", None) in (None, channel):
        return  # not handed over (or over TLS, whose wrapper has no protocol: left as Daphne leaves it)
    if getattr(transport, "producer", None) is channel:
        transport.unregisterProducer()
    channel.setTimeout(None)


def _refuse_body(request: Any, limit: int) -> None:
    request._racing_refused = True
    transport = request.channel.transport
    if transport is None:
        return
    transport.write(_http_response("413 Payload Too Large", f"Request body too large: the limit is {limit} bytes"))
    transport.loseConnection()  # reads no more of it


class _Refusal:
    """A connection answered at once with a fixed response, then closed."""

    def __init__(self, response: bytes) -> None:
        self.response = response
        self.transport: Any = None

    def makeConnection(self, transport: Any) -> None:  # noqa: N802 - Twisted's IProtocol
        self.transport = transport
        transport.write(self.response)
        transport.loseConnection()

    def dataReceived(self, data: bytes) -> None:  # noqa: N802
        pass

    def connectionLost(self, reason: Any) -> None:  # noqa: N802
        pass


class _PendingRequest:
    """One connection's wait for its request headers: counted against its address until the
    first request's headers are in, and timed out if they take too long."""

    __slots__ = ("guard", "address", "counted", "timer", "transport")

    def __init__(self, guard: HttpRequestGuard, address: str) -> None:
        self.guard = guard
        self.address = address
        self.counted = True
        self.timer: Any = None
        self.transport: Any = None

    @staticmethod
    def of(request: Any) -> _PendingRequest | None:
        transport = getattr(request.channel, "transport", None)
        return getattr(transport, "_racing_pending", None)

    def watch(self, protocol: Any) -> None:
        make_connection = protocol.makeConnection
        connection_lost = protocol.connectionLost

        def watched_make_connection(transport: Any) -> None:
            self.transport = transport
            transport._racing_pending = self
            self.arm()
            make_connection(transport)

        def watched_connection_lost(reason: Any) -> None:
            self.uncount()
            self.disarm()
            connection_lost(reason)

        protocol.makeConnection = watched_make_connection
        protocol.connectionLost = watched_connection_lost

    def arm(self) -> None:
        self.disarm()
        # Daphne runs Twisted on asyncio's loop, which is running whenever Twisted calls us.
        self.timer = asyncio.get_running_loop().call_later(self.guard.headers_timeout_s, self.expire)

    def disarm(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
        self.timer = None

    def uncount(self) -> None:
        if self.counted:
            self.counted = False
            self.guard.release(self.address)

    def next_request(self) -> None:
        if not self.counted:  # a later request on a kept-alive connection: the same deadline
            self.arm()

    def headers_done(self) -> None:
        self.disarm()
        self.uncount()

    def expire(self) -> None:
        self.timer = None
        self.uncount()
        transport = self.transport
        if transport is not None and not transport.disconnecting:
            transport.write(_http_response("408 Request Timeout", (
                f"Request headers not received within {self.guard.headers_timeout_s:g} s"
            )))  # fmt: skip
            transport.loseConnection()
