"""The Daphne adapter (live/protocol/daphne.py): checked against the real installed Daphne,
Twisted and autobahn, and each feature's behaviour on stand-ins."""

from __future__ import annotations

import asyncio
import functools
from types import SimpleNamespace

from live.protocol.daphne import send_prepared_frame, truncate_close_reason, websocket_protocol


class FakeSocket:
    def __init__(self, takes: int | None = None, error: Exception | None = None) -> None:
        self.takes, self.error, self.sent = takes, error, []

    def send(self, data: bytes) -> int:
        if self.error:
            raise self.error
        taken = len(data) if self.takes is None else self.takes
        self.sent.append(data[:taken])
        return taken


def connection(*, socket: FakeSocket, queued: bytes = b"", tls: bool = False, open_: bool = True):
    written: list[bytes] = []
    transport = SimpleNamespace(
        TLS=tls, disconnecting=False, dataBuffer=queued, _tempDataBuffer=[], socket=socket, write=written.append
    )
    prepared_sent: list = []
    protocol = SimpleNamespace(
        STATE_OPEN=3, state=3 if open_ else 4, transport=transport, sendPreparedMessage=prepared_sent.append
    )
    return protocol, written, prepared_sent


PREPARED = SimpleNamespace(payloadHybi=b"\x81\x05hello")


def test_an_idle_connection_gets_the_frame_straight_on_its_socket():
    socket = FakeSocket()
    protocol, written, _ = connection(socket=socket)

    send_prepared_frame(protocol, PREPARED)

    assert socket.sent == [b"\x81\x05hello"] and written == []


def test_what_the_kernel_does_not_take_is_queued_in_order():
    socket = FakeSocket(takes=3)
    protocol, written, _ = connection(socket=socket)

    send_prepared_frame(protocol, PREPARED)

    assert socket.sent == [b"\x81\x05h"] and written == [b"ello"]


def test_a_slow_reader_with_bytes_queued_gets_the_frame_queued_behind_them():
    socket = FakeSocket()
    protocol, _, prepared_sent = connection(socket=socket, queued=b"earlier frame")

    send_prepared_frame(protocol, PREPARED)

    assert socket.sent == [] and prepared_sent == [PREPARED]


def test_tls_connections_are_never_bypassed():
    socket = FakeSocket()
    protocol, _, prepared_sent = connection(socket=socket, tls=True)

    send_prepared_frame(protocol, PREPARED)

    assert socket.sent == [] and prepared_sent == [PREPARED]


def test_a_closing_connection_gets_nothing_and_a_broken_socket_raises_nothing():
    closed, _, closed_prepared = connection(socket=FakeSocket(), open_=False)
    broken, written, _ = connection(socket=FakeSocket(error=ConnectionResetError()))

    send_prepared_frame(closed, PREPARED)
    send_prepared_frame(broken, PREPARED)

    assert closed_prepared == [] and written == []


def test_the_protocol_is_found_only_behind_daphnes_send():
    protocol = SimpleNamespace(sendPreparedMessage=None, factory=None)

    assert websocket_protocol(functools.partial(lambda p, m: None, protocol)) is protocol
    assert websocket_protocol(lambda message: None) is None
    assert websocket_protocol(functools.partial(lambda m: None)) is None


def test_close_reasons_are_cut_to_fit_a_close_frame_on_a_character_boundary():
    assert truncate_close_reason("x" * 200) == "x" * 123
    assert truncate_close_reason("€" * 50).encode() == ("€" * 41).encode()


def test_the_kernel_send_buffer_of_a_connection_is_capped():
    import socket

    from live.protocol.daphne import limit_send_buffer

    with socket.socket() as sock:
        protocol = SimpleNamespace(transport=SimpleNamespace(getHandle=lambda: sock))  # as Twisted's TCP transport
        limit_send_buffer(protocol, 16 * 1024)

        # Linux reports twice what was asked (its bookkeeping overhead), and no longer autotunes it.
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF) in (16 * 1024, 32 * 1024)
    limit_send_buffer(None, 16 * 1024)  # not under Daphne: nothing to do


# --- Against the installed libraries ----------------------------------------------------------


def test_the_installed_libraries_have_everything_the_adapter_relies_on():
    from live.protocol.daphne import verify

    assert verify() == {}


def test_the_adapter_is_installed_on_daphnes_real_protocols():
    from daphne.http_protocol import HTTPFactory, WebRequest
    from daphne.ws_protocol import WebSocketFactory, WebSocketProtocol

    import racing.asgi  # noqa: F401 - installs the adapter, as every server process does
    from live.protocol import daphne

    assert WebSocketProtocol._racing_fixes_installed and daphne.adapter_health() == {"degraded": []}
    for method in (WebSocketProtocol.handle_reply, WebSocketProtocol.onMessage, WebSocketProtocol.onPing,
                   WebSocketProtocol.connectionLost, WebSocketProtocol._max_message_size_exceeded,
                   HTTPFactory.buildProtocol, WebRequest.gotLength, WebRequest.handleContentChunk,
                   WebSocketFactory.buildProtocol):  # fmt: skip
        assert method.__module__ == "live.protocol.daphne", method


def test_a_real_prepared_frame_and_a_real_twisted_buffer_are_read_as_the_fast_path_expects():
    from autobahn.twisted.websocket import WebSocketServerFactory
    from twisted.internet import abstract

    from live.protocol.daphne import buffered_bytes

    prepared = WebSocketServerFactory().prepareMessage(b"hello")
    transport = abstract.FileDescriptor()
    transport.connected, transport.startWriting = True, lambda: None
    transport.write(b"abc")

    assert prepared.payloadHybi == b"\x81\x05hello"
    assert buffered_bytes(transport) == 3


def test_a_library_that_lacks_an_internal_switches_its_feature_off_and_says_so(monkeypatch):
    import inspect

    from live.protocol import daphne

    real_getsource = inspect.getsource

    def source_without_the_partial(obj):
        source = real_getsource(obj)
        return source.replace("partial(self.handle_reply, protocol)", "self.reply_to(protocol)")

    monkeypatch.setattr(inspect, "getsource", source_without_the_partial)
    problems = daphne.verify()
    monkeypatch.setattr(daphne, "_off", problems)

    # A changed create_application also switches off the light input queue, a copy of it.
    assert set(problems) == {daphne.FAST_PATH, daphne.INPUT_QUEUE}
    assert "partial(self.handle_reply, protocol)" in problems[daphne.FAST_PATH]
    # The fan-out then writes through Daphne's ASGI send, and /healthz says so.
    assert (
        websocket_protocol(
            functools.partial(lambda p, m: None, SimpleNamespace(sendPreparedMessage=None, factory=None))
        )
        is None
    )
    assert daphne.adapter_health()["degraded"] == [
        f"{daphne.INPUT_QUEUE}: {problems[daphne.INPUT_QUEUE]}",
        f"fast path: {problems[daphne.FAST_PATH]}",
    ]


def test_connections_share_their_factorys_options_instead_of_copying_them():
    from daphne.ws_protocol import WebSocketFactory
    from twisted.internet.address import IPv4Address
    from twisted.internet.testing import StringTransport

    import racing.asgi  # noqa: F401 - installs the adapter, as every server process does

    factory = WebSocketFactory(SimpleNamespace(), server="daphne")
    factory.setProtocolOptions(autoPingTimeout=7, allowNullOrigin=True, openHandshakeTimeout=3)
    address = IPv4Address("TCP", "127.0.0.1", 50000)
    first, second = factory.buildProtocol(address), factory.buildProtocol(address)
    first.makeConnection(StringTransport())

    assert type(first) is type(second) and first.factory is factory
    # autobahn found every option on the class and copied none into the connection
    assert not set(first.CONFIG_ATTRS) & set(first.__dict__)
    assert (first.autoPingTimeout, first.openHandshakeTimeout, first.allowNullOrigin) == (7, 3, True)
    # a function option stays a plain function, not a method of the connection
    assert first.perMessageCompressionAccept([]) is None


async def test_the_light_input_queue_hands_items_over_in_order_as_asyncio_queue_does():
    from live.protocol.daphne import InputQueue

    queue = InputQueue()
    queue.put_nowait({"type": "websocket.connect"})
    assert queue.qsize() == 1 and await queue.get() == {"type": "websocket.connect"} and queue.empty()

    waiting = asyncio.ensure_future(queue.get())
    await asyncio.sleep(0)
    queue.put_nowait(1)
    queue.put_nowait(2)
    assert await waiting == 1 and await queue.get() == 2 and queue.empty()


async def test_a_cancelled_receive_of_the_light_input_queue_loses_nothing_for_the_next():
    from live.protocol.daphne import InputQueue

    queue = InputQueue()
    cancelled, waiting = asyncio.ensure_future(queue.get()), asyncio.ensure_future(queue.get())
    await asyncio.sleep(0)
    cancelled.cancel()  # as Django cancels its listener for a disconnect
    await asyncio.sleep(0)
    queue.put_nowait("disconnect")

    assert await waiting == "disconnect"
    assert cancelled.cancelled() and queue.empty()


def test_daphne_makes_each_connection_a_light_input_queue():
    from daphne.server import Server

    import racing.asgi  # noqa: F401 - installs the adapter, as every server process does
    from live.protocol.daphne import InputQueue

    server = SimpleNamespace(connections={"protocol": {}}, application=lambda **kwargs: asyncio.sleep(0))
    server.handle_reply = lambda protocol, message: None
    loop = asyncio.new_event_loop()
    try:
        asyncio.set_event_loop(loop)
        queue = Server.create_application(server, "protocol", {"type": "websocket"})
        loop.run_until_complete(server.connections["protocol"]["application_instance"])
    finally:
        asyncio.set_event_loop(None)
        loop.close()
    assert isinstance(queue, InputQueue)


def test_the_http_channel_of_an_upgraded_connection_is_let_go():
    import gc
    import weakref

    from twisted.internet.testing import StringTransport
    from twisted.web import http

    from live.protocol.daphne import _release_upgraded_channel

    channel = http.HTTPChannel()
    transport = StringTransport()
    channel.makeConnection(transport)  # registers itself as the connection's producer, with a timeout
    assert transport.producer is channel
    transport.protocol = SimpleNamespace()  # what Daphne does on an upgrade: the WebSocket protocol takes over
    gone = weakref.ref(channel)

    _release_upgraded_channel(channel)
    del channel
    gc.collect()

    assert transport.producer is None and gone() is None


def test_a_channel_still_serving_http_is_left_alone():
    from twisted.internet.testing import StringTransport
    from twisted.web import http

    from live.protocol.daphne import _release_upgraded_channel

    channel = http.HTTPChannel()
    transport = StringTransport()
    channel.makeConnection(transport)
    transport.protocol = channel

    _release_upgraded_channel(channel)

    assert transport.producer is channel
    channel.setTimeout(None)


def test_autobahns_timings_still_print_as_text_with_its_debug_formatting_made_lazy():
    from autobahn.websocket.protocol import Timings

    import racing.asgi  # noqa: F401 - installs the adapter, as every server process does

    timings = Timings()
    timings.track("onOpen")

    assert isinstance(str(timings), str) and "onOpen" in str(timings)
