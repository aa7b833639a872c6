"""/ws/live on real Daphne processes: one connection follows several races, each race's updates
in seq order as its own socket would get them, whichever process stored them; a race dropped
with unsubscribe sends nothing more; after the server is killed the client resumes each race."""

from __future__ import annotations

import asyncio
import json
import os
import signal
from typing import Any

import pytest
import websockets
from websockets.exceptions import ConnectionClosed

from tests.servers import feed_token, post_json, start_daphne
from tests.wsclient import next_message

pytestmark = pytest.mark.e2e


async def send(ws: Any, message: dict) -> None:
    await ws.send(json.dumps(message))


async def receive_updates(ws: Any, count: int) -> list[dict]:
    return [await next_message(ws) for _ in range(count)]


async def test_one_connection_follows_races_across_processes_and_resumes_each_after_a_kill(server_database, tmp_path):
    races = [
        await asyncio.to_thread(server_database.race_of_its_own, copy_of=copy_of, status="open")
        for copy_of in (10, 11, 12)
    ]
    environment = {"SIMULATION_ENABLED": "0", "CHANNEL_LAYER_PREFIX": "live-e2e"}
    watched = start_daphne(server_database, log_dir=tmp_path, **environment)
    other = start_daphne(server_database, log_dir=tmp_path, **environment)  # the feed posts here
    token = await asyncio.to_thread(feed_token, other)
    horses: dict[int, list[int]] = {}

    async def post_odds(server, race_id: int, price: float) -> None:
        body = [{"horse_id": horse_id, "odds": price} for horse_id in horses[race_id]]
        status, _ = await asyncio.to_thread(post_json, server.http_url(f"/api/races/{race_id}/odds/"), body, token)
        assert status == 201

    try:
        async with websockets.connect(watched.ws_url("/ws/live")) as ws:
            epochs = {}
            for race_id in races:
                await send(ws, {"type": "subscribe", "race_id": race_id})
                initial, subscribed = await receive_updates(ws, 2)
                assert (initial["type"], subscribed["type"]) == ("initial_state", "subscribed")
                horses[race_id] = [s["horse_id"] for s in initial["data"]["starters"]]
                epochs[race_id] = initial["epoch"]
            for price in (2.0, 3.0):
                for race_id in races:
                    await post_odds(other, race_id, price)
            live = await receive_updates(ws, 2 * len(races))
            await send(ws, {"type": "unsubscribe", "race_id": races[2]})
            unsubscribed = await next_message(ws)
            await post_odds(other, races[2], 9.0)  # no longer followed
            await post_odds(other, races[0], 4.0)
            after = await next_message(ws)
            os.kill(watched.process.pid, signal.SIGKILL)  # no close frame: the socket just dies
            with pytest.raises(ConnectionClosed):
                await asyncio.wait_for(ws.recv(), 10)

        for race_id, price in ((races[0], 5.0), (races[1], 5.0), (races[1], 6.0)):  # while disconnected
            await post_odds(other, race_id, price)
        watched = start_daphne(server_database, log_dir=tmp_path, port=watched.port, **environment)
        async with websockets.connect(watched.ws_url("/ws/live")) as ws:
            resumed = {}
            for race_id, last_seq in ((races[0], 3), (races[1], 2)):
                await send(
                    ws, {"type": "subscribe", "race_id": race_id, "last_seq": last_seq, "epoch": epochs[race_id]}
                )
                _, resumed[race_id] = await receive_updates(ws, 2)
                resumed[race_id]["missed"] = await receive_updates(ws, 1 if race_id == races[0] else 2)
            await post_odds(other, races[1], 7.0)
            latest = await next_message(ws)
    finally:
        watched.stop()
        other.stop()

    def seqs_of(messages: list[dict], race_id: int) -> list[int]:
        return [m["seq"] for m in messages if m["race_id"] == race_id]

    # The first odds open the market: odds at 1, 2 for each race, in order per race.
    assert {race_id: seqs_of(live, race_id) for race_id in races} == {race_id: [1, 2] for race_id in races}
    assert unsubscribed == {"type": "unsubscribed", "race_id": races[2]}
    assert (after["race_id"], after["seq"], after["odds"][0]["odds"]) == (races[0], 3, 4.0)
    assert resumed[races[0]]["resumed"] is True
    assert [(m["seq"], m["odds"][0]["odds"]) for m in resumed[races[0]]["missed"]] == [(4, 5.0)]
    assert [(m["seq"], m["odds"][0]["odds"]) for m in resumed[races[1]]["missed"]] == [(3, 5.0), (4, 6.0)]
    assert (latest["race_id"], latest["seq"], latest["odds"][0]["odds"]) == (races[1], 5, 7.0)


def test_the_protocol_pages_live_example_follows_several_races(server_database, tmp_path):
    # A client written from docs/protocol.md alone: its /ws/live example, as printed there.
    import re
    import subprocess
    import sys
    import time
    import urllib.request

    from tests.spec import REPO_DIR

    page = (REPO_DIR / "docs" / "protocol.md").read_text().split("## Many races on one connection", 1)[1]
    example = re.search(r"```python\n(.*?)```", page, flags=re.DOTALL).group(1)
    races = [server_database.race_of_its_own(copy_of=copy_of, status="open") for copy_of in (13, 14)]
    server = start_daphne(server_database, log_dir=tmp_path, SIMULATION_ENABLED="0", CHANNEL_LAYER_PREFIX="live-doc")
    assert "127.0.0.1:8000" in example and "follow([1, 2, 3])" in example
    example = example.replace("127.0.0.1:8000", f"127.0.0.1:{server.port}")
    example = example.replace("follow([1, 2, 3])", f"follow({races})")
    token = feed_token(server)
    process = subprocess.Popen(
        [sys.executable, "-u", "-c", example], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    lines = []
    try:
        for _ in range(4):  # initial_state and subscribed for each race
            lines.append(process.stdout.readline().split())
        for race_id in races:
            with urllib.request.urlopen(server.http_url(f"/api/races/{race_id}/"), timeout=10) as response:
                card = json.loads(response.read())
            body = [{"horse_id": s["horse_id"], "odds": 4.0} for s in card["starters"]]
            assert post_json(server.http_url(f"/api/races/{race_id}/odds/"), body, token)[0] == 201
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and len(lines) < 6:
            lines.append(process.stdout.readline().split())
    finally:
        process.kill()
        process.communicate(timeout=10)
        server.stop()

    assert lines == [
        ["initial_state", str(races[0]), "None"], ["subscribed", str(races[0]), "0"],
        ["initial_state", str(races[1]), "None"], ["subscribed", str(races[1]), "0"],
        ["odds_update", str(races[0]), "1"], ["odds_update", str(races[1]), "1"],
    ]  # fmt: skip


async def test_a_meetings_board_on_one_process_hears_of_a_race_the_feed_moves_on_another(server_database, tmp_path):
    race_id = await asyncio.to_thread(server_database.race_of_its_own, copy_of=15, status="open")
    environment = {"SIMULATION_ENABLED": "0", "CHANNEL_LAYER_PREFIX": "live-board-e2e"}
    watched = start_daphne(server_database, log_dir=tmp_path, **environment)
    other = start_daphne(server_database, log_dir=tmp_path, **environment)
    token = await asyncio.to_thread(feed_token, other)
    try:
        async with websockets.connect(watched.ws_url("/ws/live")) as ws:
            await send(ws, {"type": "subscribe", "race_id": race_id})
            initial, _ = await receive_updates(ws, 2)
            meeting_id = initial["data"]["race"]["meeting_id"]
            await send(ws, {"type": "unsubscribe", "race_id": race_id})
            await next_message(ws)
            await send(ws, {"type": "subscribe", "meeting_id": meeting_id})
            state = await next_message(ws)
            horses = [s["horse_id"] for s in initial["data"]["starters"]]
            for price in (2.0, 3.0, 4.0):  # within a second: the board gets the latest
                body = [{"horse_id": h, "odds": price + n} for n, h in enumerate(horses)]
                url = other.http_url(f"/api/races/{race_id}/odds/")
                assert (await asyncio.to_thread(post_json, url, body, token))[0] == 201
            summaries = [await next_message(ws)]
            while summaries[-1]["race"]["favourite"]["odds"] != 4.0:
                summaries.append(await next_message(ws, timeout_s=3))
            url = other.http_url(f"/api/races/{race_id}/status/")
            assert (await asyncio.to_thread(post_json, url, {"status": "closed"}, token))[0] == 201
            closed = await next_message(ws)
    finally:
        watched.stop()
        other.stop()

    assert state["type"] == "meeting_state" and race_id in [race["id"] for race in state["races"]]
    assert all(summary["race_id"] == race_id for summary in summaries) and len(summaries) <= 2
    assert closed["race"]["status"] == "closed"


async def test_viewers_are_counted_across_processes_and_a_killed_one_leaves_none(server_database, tmp_path, redis_url):
    race_id = await asyncio.to_thread(server_database.race_of_its_own, copy_of=16, status="open")
    environment = {"SIMULATION_ENABLED": "0", "CHANNEL_LAYER_PREFIX": f"live-viewers-{os.getpid()}"}
    board_server = start_daphne(server_database, log_dir=tmp_path, **environment)
    fans_server = start_daphne(server_database, log_dir=tmp_path, **environment)

    async def viewers(ws: Any, wanted: int) -> int:
        """Read summaries until the race has ``wanted`` viewers (or the time runs out)."""
        count = -1
        while count != wanted:
            summary = await next_message(ws, timeout_s=8)
            if summary["type"] == "race_summary" and summary["race_id"] == race_id:
                count = summary["race"]["viewers"]
        return count

    try:
        async with websockets.connect(board_server.ws_url("/ws/live")) as board:
            async with websockets.connect(board_server.ws_url(f"/ws/races/{race_id}")) as own:
                initial = json.loads(await own.recv())
                await send(board, {"type": "subscribe", "meeting_id": initial["data"]["race"]["meeting_id"]})
                await next_message(board)  # meeting_state
                fans = [await websockets.connect(fans_server.ws_url(f"/ws/races/{race_id}")) for _ in range(2)]
                assert await viewers(board, 3) == 3  # one here, two on the other process
                os.kill(fans_server.process.pid, signal.SIGKILL)  # its counts are never withdrawn
                assert await viewers(board, 1) == 1  # they lapse
                for fan in fans:
                    await fan.close()
    finally:
        board_server.stop()
        fans_server.stop()
