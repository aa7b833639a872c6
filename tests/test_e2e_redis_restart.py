"""Redis restarted under two running Daphne processes: they stay up and the race goes on."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import time

import pytest

from bench.soak import OwnRedis  # a redis-server on a spare port, to kill and restart
from tests.conftest import require_service
from tests.servers import start_daphne
from tests.test_e2e_daphne import _feed_token, _post_json
from tests.wsclient import next_message, race_socket

pytestmark = pytest.mark.e2e

RACE_ID = 17  # a fixture race no other test uses


@pytest.fixture
def own_redis(tmp_path):
    require_service(shutil.which("redis-server") is not None, "redis-server is not installed: this test restarts its own Redis")
    redis = OwnRedis(tmp_path)
    redis.start()
    yield redis
    redis.stop()


async def test_a_redis_restart_is_survived_and_updates_flow_again_to_both_processes(server_database, own_redis, tmp_path):
    environment = {"REDIS_URL": own_redis.url, "SIMULATION_ENABLED": "0", "CHANNEL_LAYER_PREFIX": "restart"}
    servers = [start_daphne(server_database, log_dir=tmp_path, **environment) for _ in range(2)]
    token = await asyncio.to_thread(_feed_token, servers[0])
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
                status, _ = await asyncio.to_thread(_post_json, post_url, body, token)
                assert status == 201  # stored, even while it cannot be broadcast

            async def receive_up_to(seq: int) -> None:
                for client, messages in zip(clients, received):
                    while not messages or messages[-1]["seq"] < seq:
                        messages.append(await next_message(client, 10))

            await post(3.0)
            await receive_up_to(first_seq := 1)
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
                except (TimeoutError, asyncio.TimeoutError):
                    assert time.monotonic() < deadline, "updates never flowed again after the restart"
        health = [server.process.poll() for server in servers]
    finally:
        for server in servers:
            server.stop()

    for messages in received:  # every stored update, on both processes, once each, in order
        assert [m["seq"] for m in messages] == list(range(first_seq, last_seq + 1))
        assert [m["odds"][0]["odds"] for m in messages] == [3.0] + [4.0] * (last_seq - first_seq)
    assert health == [None, None]  # both servers stayed up
