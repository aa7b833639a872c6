"""Dead connections are reaped: Daphne's keepalive pings drop a peer that stopped answering."""

from __future__ import annotations

import json
import socket
import time
import urllib.request

import pytest
from websockets.sync.client import connect

from tests.rawws import handshake
from tests.servers import start_daphne

pytestmark = pytest.mark.e2e

RACE_ID = 8  # the idle fixture race: no test publishes to it


def health(server) -> dict:
    with urllib.request.urlopen(server.http_url("/healthz"), timeout=5) as response:
        return json.loads(response.read())


def open_and_go_silent(port: int) -> socket.socket:
    """Open a WebSocket by hand, then neither read nor answer anything: a phone gone off the air."""
    peer, head, _ = handshake(port, f"/ws/races/{RACE_ID}")
    assert head.startswith(b"HTTP/1.1 101")
    return peer


def test_a_peer_that_stops_answering_pings_is_dropped_and_a_live_one_is_kept(server_database, tmp_path):
    server = start_daphne(
        server_database, log_dir=tmp_path, SIMULATION_ENABLED="0",
        WEBSOCKET_PING_INTERVAL_S="1", WEBSOCKET_PING_TIMEOUT_S="2",
    )  # fmt: skip
    try:
        with connect(server.ws_url(f"/ws/races/{RACE_ID}")) as live:  # answers pings by itself
            live.recv(timeout=5)  # initial_state; it only listens from here
            silent = open_and_go_silent(server.port)
            deadline = time.monotonic() + 5
            while health(server)["websocket_connections"] < 2:
                assert time.monotonic() < deadline, "the silent peer never counted as connected"
                time.sleep(0.1)

            deadline = time.monotonic() + 15
            while health(server)["websocket_connections"] > 1:
                assert time.monotonic() < deadline, "the silent peer was never dropped"
                time.sleep(0.25)
            live.send(json.dumps({"type": "ping"}))
            while (reply := json.loads(live.recv(timeout=5)))["type"] != "pong":
                assert reply["type"] == "odds_update"  # the race's latest odds, if another test ran it
            silent.close()
    finally:
        server.stop()
