"""What an attacker (or a broken client) can make a real Daphne hold, and how it is refused: clients
that vanish with messages queued, floods of frames and pings, half-sent requests, huge bodies,
paths that are not a race. After each, the server's counts are back where they were."""

from __future__ import annotations

import asyncio
import json
import socket
import time
import urllib.request

import pytest
import websockets
from websockets.exceptions import ConnectionClosed

from tests.rawws import (
    OPCODE_PING,
    OPCODE_PONG,
    OPCODE_TEXT,
    abort,
    client_frame,
    close_of,
    frames_in,
    handshake,
    read_until_closed,
)
from tests.servers import DaphneServer, feed_token, post_json, start_daphne

pytestmark = pytest.mark.e2e


def health(server: DaphneServer) -> dict:
    with urllib.request.urlopen(server.http_url("/healthz"), timeout=10) as response:
        return json.loads(response.read())


def rss_kib(server: DaphneServer) -> int:
    with open(f"/proc/{server.process.pid}/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))


def wait_for(condition, timeout_s: float = 15, interval_s: float = 0.2) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(interval_s)
    return condition()


@pytest.fixture(scope="module")
def hostile_server(server_database, tmp_path_factory):
    """A Daphne with small limits, no simulation: every update in these tests is posted."""
    server = start_daphne(
        server_database, log_dir=tmp_path_factory.mktemp("hostile"),
        SIMULATION_ENABLED="0", WEBSOCKET_MAX_MESSAGES_PER_S="5", HTTP_MAX_BODY_BYTES=str(64 * 1024),
    )  # fmt: skip
    yield server
    server.stop()


@pytest.fixture(scope="module")
def race_with_updates(hostile_server) -> int:
    """A race of its own with 30 odds updates stored, so that every resume has something to replay."""
    database = hostile_server.database
    race_id = database.race_of_its_own(copy_of=9)
    token = feed_token(hostile_server)
    card = json.loads(urllib.request.urlopen(hostile_server.http_url(f"/api/races/{race_id}/"), timeout=10).read())
    horse_ids = [s["horse_id"] for s in card["starters"]]
    for n in range(30):
        body = [{"horse_id": h, "odds": round(2.0 + n * 0.1 + i, 2)} for i, h in enumerate(horse_ids)]
        status, _ = post_json(hostile_server.http_url(f"/api/races/{race_id}/odds/"), body, token)
        assert status == 201
    return race_id


def test_clients_that_vanish_with_resumes_queued_give_everything_back(hostile_server, race_with_updates):
    # The probe's repro: sockets each send 10 resumes from 0 and drop the TCP connection without a
    # close frame, round after round. The consumers used to be killed with messages queued, and
    # their address counts and fan-out places stayed for good (4429 for everyone behind a NAT).
    baseline = health(hostile_server)
    resume = client_frame(
        OPCODE_TEXT, json.dumps({"type": "subscribe", "race_id": race_with_updates, "last_seq": 0}).encode()
    )
    for _ in range(3):
        peers = []
        for _ in range(120):
            peer, head, _ = handshake(hostile_server.port, f"/ws/races/{race_with_updates}")
            assert head.startswith(b"HTTP/1.1 101")
            peer.sendall(resume * 10)
            peers.append(peer)
        for peer in peers:
            abort(peer)

    assert wait_for(lambda: health(hostile_server)["websocket_connections"] == baseline["websocket_connections"])
    after = health(hostile_server)
    assert after["races_watched"] == baseline["races_watched"]
    assert after["http_requests_pending"] == 0
    assert "took too long to shut down" not in hostile_server.log()  # nothing left for Daphne to kill
    peer, head, _ = handshake(hostile_server.port, f"/ws/races/{race_with_updates}")
    assert head.startswith(b"HTTP/1.1 101")  # the address is still welcome
    abort(peer)


def test_a_ping_flood_is_cut_off_with_4429_as_the_frames_arrive(hostile_server, race_with_updates):
    peer, head, stream = handshake(hostile_server.port, f"/ws/races/{race_with_updates}")
    assert head.startswith(b"HTTP/1.1 101")

    peer.sendall(client_frame(OPCODE_PING, b"x") * 5000)
    frames = frames_in(read_until_closed(peer, stream))
    abort(peer)

    pongs = [f for f in frames if f[0] == OPCODE_PONG]
    assert len(pongs) <= 10  # the burst allowance, not 5,000
    assert close_of(frames) == (4429, "Too many messages: at most 5 a second")


def test_a_burst_of_resumes_is_cut_off_before_they_are_handled(hostile_server, race_with_updates):
    peer, head, stream = handshake(hostile_server.port, f"/ws/races/{race_with_updates}")
    resume = {"type": "subscribe", "race_id": race_with_updates, "last_seq": 0}

    peer.sendall(client_frame(OPCODE_TEXT, json.dumps(resume).encode()) * 200)
    frames = frames_in(read_until_closed(peer, stream))
    abort(peer)

    answers = [json.loads(payload) for opcode, payload in frames if opcode == OPCODE_TEXT]
    assert sum(1 for a in answers if a["type"] == "subscribed") <= 10
    assert close_of(frames)[0] == 4429


def test_a_resume_that_is_not_read_is_cut_off_at_the_buffer_bound(server_database, tmp_path):
    server = start_daphne(
        server_database, log_dir=tmp_path, SIMULATION_ENABLED="0",
        WEBSOCKET_MAX_BUFFERED_BYTES=str(8 * 1024), WEBSOCKET_SEND_BUFFER_BYTES=str(4 * 1024),
    )  # fmt: skip
    try:
        race_id = server.database.race_of_its_own(copy_of=9)
        token = feed_token(server)
        horse_ids = [
            s["horse_id"]
            for s in json.loads(urllib.request.urlopen(server.http_url(f"/api/races/{race_id}/")).read())["starters"]
        ]
        for n in range(60):
            body = [{"horse_id": h, "odds": round(2.0 + n * 0.1 + i, 2)} for i, h in enumerate(horse_ids)]
            assert post_json(server.http_url(f"/api/races/{race_id}/odds/"), body, token)[0] == 201
        baseline = health(server)["websocket_connections"]

        # Resumes from 0 in the URL and never reads: 60 updates of a full field is far more
        # than the bound, so the replay stops there rather than queueing them all.
        peer, head, stream = handshake(server.port, f"/ws/races/{race_id}?last_seq=0", receive_buffer_bytes=2048)
        assert head.startswith(b"HTTP/1.1 101")
        assert wait_for(lambda: "not reading what it asked for" in server.log())
        stream = read_until_closed(peer, stream)
        abort(peer)
        assert wait_for(lambda: health(server)["websocket_connections"] == baseline)
    finally:
        server.stop()

    frames = frames_in(stream)
    messages = [json.loads(p) for o, p in frames if o == OPCODE_TEXT]
    updates = [m for m in messages if m["type"] not in ("initial_state", "subscribed")]
    # Update 1 opened the market (race_status); the odds follow, in order, until the cut.
    assert updates[0]["type"] == "race_status" and {u["type"] for u in updates[1:]} == {"odds_update"}
    assert 1 < len(updates) < 61 and [u["seq"] for u in updates] == list(range(1, len(updates) + 1))
    assert close_of(frames) == (4008, "Client too slow: updates were not read")


def test_half_sent_requests_are_timed_out_and_capped_per_address(server_database, tmp_path):
    server = start_daphne(
        server_database, log_dir=tmp_path, HTTP_HEADERS_TIMEOUT_S="1", HTTP_MAX_PENDING_PER_ADDRESS="5",
    )  # fmt: skip
    try:
        slow = []

        def trickle() -> None:
            peer = socket.create_connection(("127.0.0.1", server.port), timeout=10)
            peer.sendall(b"GET /ws/races/1 HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n")  # ... and no more
            slow.append(peer)

        assert wait_for(lambda: health(server)["http_requests_pending"] == 0)  # start_daphne's probe has gone
        for _ in range(4):
            trickle()
        assert wait_for(lambda: health(server)["http_requests_pending"] == 4)
        trickle()  # the fifth: the address's last place
        time.sleep(0.2)
        one_too_many = socket.create_connection(("127.0.0.1", server.port), timeout=10)
        refused = one_too_many.recv(4096)

        answers = [peer.recv(4096) for peer in slow]  # within the deadline, not after minutes
        assert wait_for(lambda: health(server)["http_requests_pending"] == 0)
    finally:
        server.stop()

    assert refused.startswith(b"HTTP/1.1 429 ")
    assert b"Too many unfinished requests from your address" in refused
    assert all(answer.startswith(b"HTTP/1.1 408 ") for answer in answers)


def test_a_body_over_the_limit_is_refused_413_without_being_read(hostile_server, race_with_updates):
    before = rss_kib(hostile_server)
    peer = socket.create_connection(("127.0.0.1", hostile_server.port), timeout=10)
    peer.sendall(
        f"POST /api/races/{race_with_updates}/odds/ HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Content-Type: application/json\r\nContent-Length: {200 * 1024 * 1024}\r\n\r\n".encode()
    )
    answer = b""
    try:
        for _ in range(50):  # send 50 MiB of it while the answer comes
            peer.sendall(b"[" * (1024 * 1024))
    except (BrokenPipeError, ConnectionResetError):
        pass
    try:
        while chunk := peer.recv(65536):
            answer += chunk
    except (TimeoutError, ConnectionResetError):
        pass
    peer.close()

    assert answer.startswith(b"HTTP/1.1 413 "), answer[:200]
    assert json.loads(answer.split(b"\r\n\r\n", 1)[1]) == {"detail": "Request body too large: the limit is 65536 bytes"}
    assert rss_kib(hostile_server) - before < 20 * 1024  # not buffered: far less than the 50 MiB sent


def test_a_chunked_body_that_grows_past_the_limit_is_refused_413(hostile_server, race_with_updates):
    peer = socket.create_connection(("127.0.0.1", hostile_server.port), timeout=10)
    head = f"POST /api/races/{race_with_updates}/odds/ HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    chunk = b"[" * 16384
    peer.sendall(head.encode() + (b"%x\r\n" % len(chunk) + chunk + b"\r\n") * 5)
    answer = peer.recv(65536)
    peer.close()

    assert answer.startswith(b"HTTP/1.1 413 ")


def test_a_body_within_the_limit_still_reaches_the_api(hostile_server, race_with_updates):
    status, body = post_json(hostile_server.http_url(f"/api/races/{race_with_updates}/odds/"), [], None)

    assert status == 401 and "detail" in body  # the API's own answer: the request got through


@pytest.mark.parametrize(
    "path, code",
    [
        ("/ws/races/1/../2", 4004),
        ("/ws/races//1", 4004),
        ("/ws/races/1%2F2", 4004),
        ("/ws/foo", 4404),
        ("/", 4404),
    ],
)
def test_a_websocket_to_a_path_that_is_not_a_race_is_refused_cleanly(hostile_server, path, code):
    peer, head, stream = handshake(hostile_server.port, path)
    stream = read_until_closed(peer, stream)
    abort(peer)

    closing = close_of(frames_in(stream))
    assert head.startswith(b"HTTP/1.1 101") and closing is not None and closing[0] == code
    assert closing[1].startswith("Race not found" if code == 4004 else "Not found")
    assert "Traceback" not in hostile_server.log() and " ERROR " not in hostile_server.log()


async def test_a_frame_over_the_limit_is_closed_1009_with_the_documented_reason(hostile_server, race_with_updates):
    async with websockets.connect(hostile_server.ws_url(f"/ws/races/{race_with_updates}"), max_size=None) as ws:
        await ws.recv()
        await ws.send("x" * (64 * 1024 + 1))
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                await asyncio.wait_for(ws.recv(), 5)

    assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (1009, "Message too big: the limit is 65536 bytes")


def test_invalid_utf8_is_closed_1007(hostile_server, race_with_updates):
    peer, _, stream = handshake(hostile_server.port, f"/ws/races/{race_with_updates}")

    peer.sendall(client_frame(OPCODE_TEXT, b'{"type": "\xff\xfe"}'))
    closing = close_of(frames_in(read_until_closed(peer, stream)))
    abort(peer)

    assert closing is not None and closing[0] == 1007 and "invalid UTF-8" in closing[1]


def test_an_unmasked_frame_is_a_protocol_violation_closed_1002(hostile_server, race_with_updates):
    peer, _, stream = handshake(hostile_server.port, f"/ws/races/{race_with_updates}")

    peer.sendall(b"\x81\x10" + b'{"type": "ping"}')  # a client must mask every frame (RFC 6455)
    closing = close_of(frames_in(read_until_closed(peer, stream)))
    abort(peer)

    assert closing == (1002, "unmasked client-to-server frame")


def test_behind_a_proxy_the_limit_counts_the_clients_address(server_database, tmp_path):
    # Run as the deploy/ example runs it, behind nginx: --proxy-headers takes X-Forwarded-For.
    server = start_daphne(
        server_database, log_dir=tmp_path, extra_args=["--proxy-headers"], WEBSOCKET_MAX_CONNECTIONS_PER_ADDRESS="2",
    )  # fmt: skip
    try:
        opened = []

        def connect_as(address: str) -> tuple[int, str] | None:
            peer, head, stream = handshake(server.port, "/ws/races/8", headers={"X-Forwarded-For": address})
            assert head.startswith(b"HTTP/1.1 101")
            opened.append(peer)
            return close_of(frames_in(read_until_closed(peer, stream, timeout_s=1)))

        first, second, third = (connect_as("203.0.113.10") for _ in range(3))
        elsewhere = connect_as("203.0.113.11")
        for peer in opened:
            abort(peer)
    finally:
        server.stop()

    assert first is None and second is None and elsewhere is None
    assert third == (4429, "Too many connections from your address: at most 2")
