"""A client that stops reading, against a real Daphne: closed with 4008, the others unharmed; if it
reads again soon after, it gets what was on its way, then the 4008 close frame."""

from __future__ import annotations

import json
import socket
import struct
import time

import pytest
from websockets.sync.client import connect

from tests.rawws import OPCODE_TEXT, client_frame, frames_in, handshake
from tests.servers import feed_token, post_json, start_daphne
from tests.test_e2e_heartbeat import health

pytestmark = pytest.mark.e2e

# What the server may hold for the stalled client: the fan-out's bound plus the kernel's send
# buffer (capped, else Linux grows it to 4 MiB on loopback and the test would post for minutes).
BUFFER_LIMIT_BYTES = 16 * 1024
SEND_BUFFER_BYTES = 8 * 1024


def stalled_subscriber(port: int, race_id: int) -> tuple[socket.socket, bytes]:
    """Open a WebSocket with a tiny receive window, subscribe, then never read again; return the
    socket and the first bytes of the stream (read along with the handshake's answer)."""
    peer, head, stream = handshake(port, f"/ws/races/{race_id}", receive_buffer_bytes=4096)
    assert head.startswith(b"HTTP/1.1 101")
    peer.sendall(client_frame(OPCODE_TEXT, json.dumps({"type": "subscribe", "race_id": race_id}).encode()))
    return peer, stream


def test_a_client_that_stops_reading_is_closed_with_4008_and_the_others_get_everything(server_database, tmp_path):
    race_id = server_database.race_of_its_own(copy_of=18, status="open")
    server = start_daphne(
        server_database, log_dir=tmp_path, SIMULATION_ENABLED="0",
        WEBSOCKET_MAX_BUFFERED_BYTES=str(BUFFER_LIMIT_BYTES), WEBSOCKET_SEND_BUFFER_BYTES=str(SEND_BUFFER_BYTES),
    )  # fmt: skip
    token = feed_token(server)
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
                status, _ = post_json(server.http_url(f"/api/races/{race_id}/odds/"), body, token)
                assert status == 201
                posted += 1
                received.append(json.loads(reader.recv(timeout=5)))  # the reader keeps up, every time
                if dropped_after is None and "that is not reading its updates" in server.log():
                    dropped_after = posted
                if dropped_after is not None and posted >= dropped_after + 5:
                    break
            # It reads again a moment later: what was on its way, then why it was closed.
            time.sleep(1.5)
            stalled.settimeout(5)
            try:
                while chunk := stalled.recv(65536):
                    stream += chunk
                    if any(opcode == 0x8 for opcode, _ in frames_in(stream)):
                        break
            except (TimeoutError, ConnectionResetError):
                pass
            stalled.close()
            time.sleep(0.5)
            connections_after = health(server)["websocket_connections"]
    finally:
        server.stop()

    assert dropped_after is not None, f"the stalled client was never closed after {posted} updates"
    assert [m["seq"] for m in received] == list(range(first_seq + 1, first_seq + 1 + posted))
    frames = frames_in(stream)
    updates = [json.loads(payload) for opcode, payload in frames if opcode == 0x1]
    assert [u["seq"] for u in updates if u["type"] == "odds_update"] == list(
        range(first_seq + 1, first_seq + 1 + len([u for u in updates if u["type"] == "odds_update"]))
    )  # in order, none missing, up to where it was cut off
    opcode, payload = frames[-1]
    assert opcode == 0x8, "the close frame comes last, after the updates on their way"
    assert struct.unpack("!H", payload[:2])[0] == 4008
    assert payload[2:].decode() == "Client too slow: updates were not read"
    assert connections_after == 1  # the reader; the stalled client's place is given back
