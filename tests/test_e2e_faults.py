"""Faults survived by a real server process: the database going away and coming back."""

from __future__ import annotations

import asyncio
import json
from urllib.parse import urlsplit, urlunsplit

import pytest
import websockets
from websockets.exceptions import ConnectionClosed

from tests.conftest import require_service
from tests.servers import TcpForwarder, start_daphne

pytestmark = pytest.mark.e2e

RACE_BEFORE, RACE_DURING, RACE_AFTER = 18, 19, 5


@pytest.fixture
def database_behind_a_switch(server_database):
    """The server database, reached through a forwarder the test can cut (PostgreSQL only)."""
    require_service(server_database.admin_url is not None, "DATABASE_URL is not PostgreSQL: this test cuts PostgreSQL")
    parts = urlsplit(server_database.url)
    forwarder = TcpForwarder(target_port=parts.port or 5432)
    forwarder.start()
    netloc = f"{parts.username}@127.0.0.1:{forwarder.port}" if parts.username else f"127.0.0.1:{forwarder.port}"
    yield forwarder, urlunsplit(parts._replace(netloc=netloc))
    forwarder.close()


async def first_message(url: str) -> dict:
    async with websockets.connect(url) as ws:
        return json.loads(await asyncio.wait_for(ws.recv(), 10))


async def test_postgresql_down_at_connect_is_1011_with_a_reason_and_the_server_recovers(
    server_database, database_behind_a_switch, tmp_path
):
    forwarder, url = database_behind_a_switch
    server = start_daphne(server_database, log_dir=tmp_path, DATABASE_URL=url, SIMULATION_ENABLED="0")
    try:
        async with websockets.connect(server.ws_url(f"/ws/races/{RACE_BEFORE}")) as watcher:
            assert json.loads(await watcher.recv())["type"] == "initial_state"

            forwarder.cut()
            async with websockets.connect(server.ws_url(f"/ws/races/{RACE_DURING}")) as unlucky:
                with pytest.raises(ConnectionClosed) as closed:
                    await asyncio.wait_for(unlucky.recv(), 20)
            # The server stays up: a connected client is still served.
            await watcher.send(json.dumps({"type": "ping"}))
            assert json.loads(await asyncio.wait_for(watcher.recv(), 5)) == {"type": "pong"}

            forwarder.start()
            recovered = await first_message(server.ws_url(f"/ws/races/{RACE_AFTER}"))
    finally:
        server.stop()

    assert closed.value.rcvd.code == 1011
    assert "database" in closed.value.rcvd.reason
    assert recovered["type"] == "initial_state"
