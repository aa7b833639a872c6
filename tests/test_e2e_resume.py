"""A Daphne process killed and restarted: its client reconnects, the resume point in the URL as
the board does, and gets every update it missed in order, then live ones."""

from __future__ import annotations

import asyncio
import os
import signal

import pytest
from websockets.exceptions import ConnectionClosed

from tests.servers import feed_token, post_json, start_daphne
from tests.wsclient import next_message, race_socket

pytestmark = pytest.mark.e2e


async def test_a_client_of_a_killed_daphne_reconnects_and_resumes_every_missed_update(server_database, tmp_path):
    race_id = await asyncio.to_thread(server_database.race_of_its_own, copy_of=10, status="open")
    environment = {"SIMULATION_ENABLED": "0", "CHANNEL_LAYER_PREFIX": "resume"}
    watched = start_daphne(server_database, log_dir=tmp_path, **environment)
    other = start_daphne(server_database, log_dir=tmp_path, **environment)  # the feed posts here
    token = await asyncio.to_thread(feed_token, other)

    async def post_odds(server, price: float) -> None:
        body = [{"horse_id": horse_id, "odds": price} for horse_id in horse_ids]
        status, _ = await asyncio.to_thread(post_json, server.http_url(f"/api/races/{race_id}/odds/"), body, token)
        assert status == 201

    try:
        async with race_socket(watched.ws_url(f"/ws/races/{race_id}")) as (ws, initial, _):
            horse_ids = [s["horse_id"] for s in initial["data"]["starters"]]
            epoch = initial["epoch"]
            await post_odds(watched, 2.0)
            last = await next_message(ws)
            os.kill(watched.process.pid, signal.SIGKILL)  # no close frame: the socket just dies
            with pytest.raises(ConnectionClosed):
                await asyncio.wait_for(ws.recv(), 10)

        for price in (3.0, 4.0, 5.0):  # published while the client has no connection
            await post_odds(other, price)
        watched = start_daphne(server_database, log_dir=tmp_path, port=watched.port, **environment)

        resume = {"last_seq": last["seq"], "epoch": epoch}
        async with race_socket(watched.ws_url(f"/ws/races/{race_id}"), **resume) as (ws, _, resumed):
            missed = [await next_message(ws) for _ in range(3)]
            await post_odds(watched, 6.0)
            live = await next_message(ws)
    finally:
        watched.stop()
        other.stop()

    assert resumed["resumed"] is True and resumed["seq"] == last["seq"] + 3
    updates = [last, *missed, live]
    assert [u["seq"] for u in updates] == list(range(last["seq"], last["seq"] + 5))
    assert [u["odds"][0]["odds"] for u in updates] == [2.0, 3.0, 4.0, 5.0, 6.0]
