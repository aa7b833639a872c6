"""End to end: a real Daphne (started as `make run` starts it) and real clients on loopback."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import sys
import textwrap

import pytest
import websockets
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tests.conftest import require_service
from tests.servers import REPO_DIR, feed_token, post_json, server_environment
from tests.spec import assert_valid, spec_example
from tests.wsclient import next_message, race_socket

pytestmark = pytest.mark.e2e

FIXTURE_RACE_ID = 1  # Addington race 1 in fixtures/race_day.json


async def test_connect_gets_initial_state_and_subscribe_gets_subscribed(daphne_server):
    async with websockets.connect(daphne_server.ws_url(f"/ws/races/{FIXTURE_RACE_ID}")) as ws:
        initial = assert_valid(json.loads(await asyncio.wait_for(ws.recv(), 5)))
        await ws.send(json.dumps({"type": "subscribe", "race_id": FIXTURE_RACE_ID}))
        subscribed = assert_valid(json.loads(await asyncio.wait_for(ws.recv(), 5)))

    assert initial["type"] == "initial_state"
    assert initial["data"]["race"]["meeting_id"] == "NZ_20261204_ADD"
    assert initial["data"]["starter_count"] == len(initial["data"]["starters"]) >= 8
    assert subscribed["type"] == "subscribed" and subscribed["race_id"] == FIXTURE_RACE_ID
    assert isinstance(subscribed["epoch"], str) and isinstance(subscribed["seq"], int)


@pytest.mark.parametrize("race_path", ["999999", "not-a-race"])
async def test_a_missing_race_is_closed_with_4004_and_its_reason_reaches_the_client(daphne_server, race_path):
    async with websockets.connect(daphne_server.ws_url(f"/ws/races/{race_path}")) as ws:
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), 5)

    assert closed.value.rcvd.code == 4004
    assert closed.value.rcvd.reason.startswith("Race not found")


async def test_garbage_gets_an_error_and_the_socket_stays_open(daphne_server):
    async with websockets.connect(daphne_server.ws_url(f"/ws/races/{FIXTURE_RACE_ID}")) as ws:
        await ws.recv()  # initial_state
        await ws.send("garbage{")
        error = json.loads(await asyncio.wait_for(ws.recv(), 5))
        await ws.send(b"\x00\x01binary")
        binary_error = json.loads(await asyncio.wait_for(ws.recv(), 5))
        await ws.send(json.dumps({"type": "subscribe", "race_id": FIXTURE_RACE_ID}))
        subscribed = json.loads(await asyncio.wait_for(ws.recv(), 5))

    assert error == {"type": "error", "code": 4400, "message": "invalid JSON"}
    assert binary_error["code"] == 4400
    assert subscribed["type"] == "subscribed"


async def test_a_frame_over_64_kib_is_closed_with_1009(daphne_server):
    async with websockets.connect(daphne_server.ws_url(f"/ws/races/{FIXTURE_RACE_ID}"), max_size=None) as ws:
        await ws.recv()
        await ws.send("x" * (64 * 1024 + 1))
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), 5)

    assert closed.value.rcvd.code == 1009


async def test_a_browser_from_another_site_is_refused(daphne_server):
    with pytest.raises(InvalidStatus) as refused:
        await websockets.connect(daphne_server.ws_url(f"/ws/races/{FIXTURE_RACE_ID}"), origin="https://evil.example")

    assert refused.value.response.status_code == 403


async def test_a_browser_from_an_allowed_host_is_served(daphne_server):
    url = daphne_server.ws_url(f"/ws/races/{FIXTURE_RACE_ID}")
    async with websockets.connect(url, origin=f"http://127.0.0.1:{daphne_server.port}") as ws:
        assert json.loads(await asyncio.wait_for(ws.recv(), 5))["type"] == "initial_state"


def _run_until(
    command: list[str], *, expect_lines: int, prefixes: tuple[str, ...] = ("",), timeout_s: float = 20
) -> list[str]:
    """Run a client that never exits on its own; return its first lines of output that start
    with one of ``prefixes``, then stop it."""
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines: list[str] = []
    try:
        while len(lines) < expect_lines:
            line = process.stdout.readline()
            if not line:
                break
            if line.startswith(prefixes):
                lines.append(line.rstrip("\n"))
        return lines
    finally:
        process.kill()
        _, stderr = process.communicate(timeout=timeout_s)
        if len(lines) < expect_lines:
            pytest.fail(f"client printed {lines!r} then stopped; stderr:\n{stderr}")


def test_the_specs_python_example_prints_initial_state_then_subscribed(daphne_server):
    example = spec_example("python").replace("localhost:8000", f"localhost:{daphne_server.port}")
    example = example.replace("12345", str(FIXTURE_RACE_ID))

    lines = _run_until([sys.executable, "-u", "-c", example], expect_lines=3)

    assert lines[0].startswith("[initial_state] {'type': 'initial_state'")
    # The race's latest odds may come first: the stream starts on connecting, subscribe or not.
    subscribed = next(line for line in lines[1:] if line.startswith("[subscribed]"))
    assert subscribed.startswith(f"[subscribed] {{'type': 'subscribed', 'race_id': {FIXTURE_RACE_ID}, 'epoch': ")
    # The simulation the client started opens the market first (race_status, which the spec's
    # example prints like any other message), after any scratching it announces before it.
    assert all(
        line.startswith(("[subscribed]", "[starter_update]", "[race_status]", "[odds_update]")) for line in lines[1:]
    )


def test_the_specs_javascript_example_connects_and_is_subscribed(daphne_server):
    node = shutil.which("node")
    require_service(node is not None, "Node.js is not installed: the spec's JavaScript example needs it")
    version = subprocess.run([node, "--version"], capture_output=True, text=True).stdout
    example = spec_example("js").replace("localhost:8000", f"localhost:{daphne_server.port}")
    example = example.replace("12345", str(FIXTURE_RACE_ID))
    # Node 20 has the browser WebSocket behind a flag; from Node 22 it is global.
    flags = ["--experimental-websocket"] if version.startswith("v20.") or version.startswith("v21.") else []

    # console.log prints a message object over several lines; keep the first line of each.
    lines = _run_until([node, *flags, "-e", example], expect_lines=4, prefixes=("Connected", "Received:"))

    assert lines[0] == "Connected"
    assert lines[1].startswith("Received: initial_state")
    assert any(line.startswith("Received: subscribed") for line in lines[2:])
    assert all(
        line.startswith(
            ("Received: subscribed", "Received: starter_update", "Received: race_status", "Received: odds_update")
        )
        for line in lines[2:]
    )


def test_a_message_published_from_another_process_reaches_a_client(daphne_server, redis_url):
    async def listen_while_publishing() -> list[dict]:
        url = daphne_server.ws_url(f"/ws/races/{FIXTURE_RACE_ID}")
        async with race_socket(url) as (ws, _, _):
            # Stored and announced by another process, as the feed API or a simulator does.
            publisher = textwrap.dedent(
                f"""
                from django.utils import timezone
                from races.services import odds_snapshot_record
                from races.models import Starter
                runners = Starter.objects.filter(race_id={FIXTURE_RACE_ID}, scratched=False)  # as of now
                odds_snapshot_record(
                    race_id={FIXTURE_RACE_ID}, odds=[(s.horse_id, 4.2) for s in runners],
                    source="simulation", taken_at=timezone.now(), market_elapsed_s=0.0,
                )
                """
            )
            env = server_environment(daphne_server.database)
            await asyncio.to_thread(
                subprocess.run,
                [sys.executable, "manage.py", "shell", "-c", publisher],
                cwd=REPO_DIR, env=env, check=True, timeout=60,
            )  # fmt: skip
            while True:  # the server's own simulation of the race may send odds meanwhile
                update = await next_message(ws)
                if update["type"] == "odds_update" and {o["odds"] for o in update["odds"]} == {4.2}:
                    return [update]

    [update] = asyncio.run(listen_while_publishing())

    assert_valid(update)
    assert update["type"] == "odds_update"
    assert {o["odds"] for o in update["odds"]} == {4.2}


async def test_an_idle_client_over_redis_stays_connected(daphne_server, redis_url):
    # redis-py 8's default 5 s read timeout broke idle channels-redis receivers after ~5 s
    # (django/channels_redis#422); racing.settings gives reads more time than BZPOPMIN's 5 s.
    race_id = 8
    async with websockets.connect(daphne_server.ws_url(f"/ws/races/{race_id}")) as ws:
        await ws.recv()
        await asyncio.sleep(7)
        await ws.send(json.dumps({"type": "subscribe", "race_id": race_id}))
        replies = []
        while not replies or replies[-1]["type"] != "subscribed":
            replies.append(json.loads(await asyncio.wait_for(ws.recv(), 5)))

    assert "Timeout reading" not in daphne_server.log()


async def test_a_feed_post_reaches_a_real_client(daphne_server):
    race_id = 9
    token = await asyncio.to_thread(feed_token, daphne_server)
    async with race_socket(daphne_server.ws_url(f"/ws/races/{race_id}")) as (ws, initial, _):
        horse_ids = [s["horse_id"] for s in initial["data"]["starters"]]
        odds = [{"horse_id": h, "odds": round(2 + i * 1.5, 2)} for i, h in enumerate(horse_ids)]
        results = {"results": [{"horse_id": h, "placing": i, "finished": True} for i, h in enumerate(horse_ids, 1)]}

        odds_status, _ = await asyncio.to_thread(
            post_json, daphne_server.http_url(f"/api/races/{race_id}/odds/"), odds, token
        )
        result_status, _ = await asyncio.to_thread(
            post_json, daphne_server.http_url(f"/api/races/{race_id}/results/"), results, token
        )
        received = []
        while not received or received[-1]["type"] != "result_update":
            received.append(assert_valid(json.loads(await asyncio.wait_for(ws.recv(), 5))))

    assert (odds_status, result_status) == (201, 201)
    # The race's simulation may have opened the market (and priced it) before the feed took over.
    assert [m["seq"] for m in received] == list(range(received[0]["seq"], received[0]["seq"] + len(received)))
    assert [m["status"] for m in received if m["type"] == "race_status"][-2:] == ["closed", "official"]
    assert [m for m in received if m["type"] == "odds_update"][-1]["odds"] == odds
    assert received[-1]["results"] == results["results"]


async def test_a_feed_post_without_a_token_is_refused_with_json(daphne_server):
    status, body = await asyncio.to_thread(
        post_json, daphne_server.http_url("/api/races/9/odds/"), [{"horse_id": 1, "odds": 2.0}], "wrong"
    )

    assert status == 401 and body["detail"]
