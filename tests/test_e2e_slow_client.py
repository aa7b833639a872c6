"""A client that stops reading, against a real Daphne: closed with 4008, the others unharmed."""

from __future__ import annotations

import base64
import json
import os
import socket
import struct
import time

import pytest
from websockets.sync.client import connect

from tests.servers import start_daphne
from tests.test_e2e_daphne import _feed_token, _post_json
from tests.test_e2e_heartbeat import health

pytestmark = pytest.mark.e2e

# What the server may hold for the stalled client: the fan-out's bound plus the kernel's send
# buffer (capped, else Linux grows it to 4 MiB on loopback and the test would post for minutes).
BUFFER_LIMIT_BYTES = 16 * 1024
SEND_BUFFER_BYTES = 8 * 1024


def stalled_subscriber(port: int, race_id: int) -> tuple[socket.socket, bytes]:
    """Open a WebSocket with a tiny receive window, subscribe, then never read again; return the
    socket and the first bytes of the stream (read along with the handshake's answer)."""
    peer = socket.socket()
    peer.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connecting: the window
    peer.connect(("127.0.0.1", port))
    key = base64.b64encode(os.urandom(16)).decode()
    peer.sendall(
        f"GET /ws/races/{race_id} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    answer = b""
    while b"\r\n\r\n" not in answer:
        answer += peer.recv(1024)
    head, stream = answer.split(b"\r\n\r\n", 1)
    assert head.startswith(b"HTTP/1.1 101")
    payload = json.dumps({"type": "subscribe", "race_id": race_id}).encode()
    mask = os.urandom(4)
    masked = bytes(byte ^ mask[i % 4] for i, byte in enumerate(payload))
    peer.sendall(struct.pack("!BB", 0x81, 0x80 | len(payload)) + mask + masked)
    return peer, stream


def close_code_in(stream: bytes) -> int | None:
    """Walk the server's (unmasked) frames and return the close frame's code, if one came."""
    offset = 0
    while offset + 2 <= len(stream):
        opcode, length = stream[offset] & 0x0F, stream[offset + 1] & 0x7F
        offset += 2
        if length == 126:
            length, offset = struct.unpack("!H", stream[offset : offset + 2])[0], offset + 2
        elif length == 127:
            length, offset = struct.unpack("!Q", stream[offset : offset + 8])[0], offset + 8
        if opcode == 0x8 and offset + 2 <= len(stream):
            return struct.unpack("!H", stream[offset : offset + 2])[0]
        offset += length
    return None


def test_a_client_that_stops_reading_is_closed_with_4008_and_the_others_get_everything(server_database, tmp_path):
    race_id = server_database.race_of_its_own(copy_of=18)
    server = start_daphne(
        server_database, log_dir=tmp_path, SIMULATION_ENABLED="0",
        WEBSOCKET_MAX_BUFFERED_BYTES=str(BUFFER_LIMIT_BYTES), WEBSOCKET_SEND_BUFFER_BYTES=str(SEND_BUFFER_BYTES),
    )  # fmt: skip
    token = _feed_token(server)
    try:
        with connect(server.ws_url(f"/ws/races/{race_id}")) as reader:
            initial = json.loads(reader.recv(timeout=5))
            reader.send(json.dumps({"type": "subscribe", "race_id": race_id}))
            first_seq = json.loads(reader.recv(timeout=5))["seq"]  # subscribed: the newest seq
            if first_seq > 0:
                reader.recv(timeout=5)  # that update, sent on subscribing
            horse_ids = [s["horse_id"] for s in initial["data"]["starters"]]
            stalled, stream = stalled_subscriber(server.port, race_id)
            time.sleep(0.5)

            received, posted, dropped_after = [], 0, None
            while posted < 400:
                body = [{"horse_id": h, "odds": round(2.0 + posted * 0.01 + i, 2)} for i, h in enumerate(horse_ids)]
                status, _ = _post_json(server.http_url(f"/api/races/{race_id}/odds/"), body, token)
                assert status == 201
                posted += 1
                received.append(json.loads(reader.recv(timeout=5)))  # the reader keeps up, every time
                if dropped_after is None and health(server)["websocket_connections"] == 1:
                    dropped_after = posted
                if dropped_after is not None and posted >= dropped_after + 5:
                    break
            stalled.settimeout(2)
            try:
                while chunk := stalled.recv(65536):
                    stream += chunk
            except (TimeoutError, ConnectionResetError):
                pass
            stalled.close()
    finally:
        server.stop()

    assert dropped_after is not None, f"the stalled client was never closed after {posted} updates"
    assert [m["seq"] for m in received] == list(range(first_seq + 1, first_seq + 1 + posted))
    # The close frame (4008) is queued behind the unread updates; when the peer does not answer it
    # the connection is dropped, and the kernel discards what was still unread, close frame too.
    assert close_code_in(stream) in (4008, None)
    assert "Closing a client of race" in server.log() and "that is not reading its updates" in server.log()
