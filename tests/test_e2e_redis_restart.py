"""Redis restarted under two running Daphne processes: they stay up and the race goes on."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import time

import pytest

from tests.conftest import require_service
from tests.servers import OwnRedis, feed_token, post_json, start_daphne
from tests.wsclient import next_message, race_socket

pytestmark = pytest.mark.e2e

RACE_ID = 17  # a fixture race no other test uses


@pytest.fixture
def own_redis(tmp_path):
    require_service(
        shutil.which("redis-server") is not None, "redis-server is not installed: this test restarts its own Redis"
    )
    redis = OwnRedis(tmp_path)
    redis.start()
    yield redis
    redis.stop()


async def test_a_redis_restart_is_survived_and_updates_flow_again_to_both_processes(
    server_database, own_redis, tmp_path
):
    environment = {"REDIS_URL": own_redis.url, "SIMULATION_ENABLED": "0", "CHANNEL_LAYER_PREFIX": "restart"}
    servers = [start_daphne(server_database, log_dir=tmp_path, **environment) for _ in range(2)]
    token = await asyncio.to_thread(feed_token, servers[0])
    post_url = servers[0].http_url(f"/api/races/{RACE_ID}/odds/")
    try:
        async with contextlib.AsyncExitStack() as stack:
            sockets = [
                await stack.enter_async_context(race_socket(server.ws_url(f"/ws/races/{RACE_ID}")))
                for server in servers
            ]
            clients = [ws for ws, _, _ in sockets]
            starters = sockets[0][1]["data"]["starters"]
            received: list[list[dict]] = [[], []]

            async def post(price: float) -> None:
                body = [{"horse_id": s["horse_id"], "odds": price} for s in starters]
                status, _ = await asyncio.to_thread(post_json, post_url, body, token)
                assert status == 201  # stored, even while it cannot be broadcast

            async def receive_up_to(seq: int) -> None:
                for client, messages in zip(clients, received, strict=False):
                    while not messages or messages[-1]["seq"] < seq:
                        messages.append(await next_message(client, 10))

            await post(3.0)
            await receive_up_to(first_seq := 2)  # the market opening (1), then these odds
            own_redis.stop()
            await asyncio.sleep(1.0)
            own_redis.start()
            # The processes notice, re-join their race groups and carry on. Updates stored while
            # a process was not yet back in its groups reach its clients from the update log,
            # before the next update that does arrive.
            last_seq = first_seq
            deadline = time.monotonic() + 20
            while True:
                await post(4.0)
                last_seq += 1
                try:
                    await asyncio.wait_for(receive_up_to(last_seq), 3)
                    break
                except TimeoutError:
                    assert time.monotonic() < deadline, "updates never flowed again after the restart"
        health = [server.process.poll() for server in servers]
    finally:
        for server in servers:
            server.stop()

    for messages in received:  # every stored update, on both processes, once each, in order
        assert [m["seq"] for m in messages] == list(range(1, last_seq + 1))
        assert (messages[0]["type"], messages[0]["status"]) == ("race_status", "open")
        assert [m["odds"][0]["odds"] for m in messages[1:]] == [3.0] + [4.0] * (last_seq - first_seq)
    assert health == [None, None]  # both servers stayed up


async def test_a_race_abandoned_while_redis_restarts_reaches_both_processes_clients_once_it_is_back(
    server_database, own_redis, tmp_path
):
    # Found by the soak run: a feed abandoned a race while Redis was down. The abandonment was
    # stored but its broadcast lost, and as the race's last update no later one filled the gap:
    # every fan, on both processes, waited for it until they reconnected.
    race_id = await asyncio.to_thread(server_database.race_of_its_own, copy_of=RACE_ID, status="open")
    environment = {"REDIS_URL": own_redis.url, "SIMULATION_ENABLED": "0", "CHANNEL_LAYER_PREFIX": "restart"}
    servers = [start_daphne(server_database, log_dir=tmp_path, **environment) for _ in range(2)]
    token = await asyncio.to_thread(feed_token, servers[0])
    status_url = servers[0].http_url(f"/api/races/{race_id}/status/")
    try:
        async with contextlib.AsyncExitStack() as stack:
            clients = [
                (await stack.enter_async_context(race_socket(server.ws_url(f"/ws/races/{race_id}"))))[0]
                for server in servers
            ]
            own_redis.stop()
            body = {"status": "abandoned", "reason": "Track unsafe"}
            status, _ = await asyncio.to_thread(post_json, status_url, body, token)
            assert status == 201  # stored, though it cannot be broadcast
            own_redis.start()
            # Nothing is published after it: each process sends it from the log once back in its
            # race groups.
            received = [await next_message(client, 20) for client in clients]
    finally:
        for server in servers:
            server.stop()

    for message in received:
        assert (message["type"], message["seq"], message["status"]) == ("race_status", 1, "abandoned")
