"""A race's whole day driven by a live feed over HTTP, watched over WebSocket on a real Daphne:
every update arrives once, in order, with consecutive seqs; a client back from a dropped
connection gets what it missed before the live updates."""

from __future__ import annotations

import asyncio
import json

from tests.servers import feed_token, post_json
from tests.spec import assert_valid
from tests.wsclient import race_socket

COPY_OF_RACE = 11  # a fixture race with a full field


async def receive_until(ws, last_type: str, timeout_s: float = 10) -> list[dict]:
    """Receive (validating each) up to and including the first message of ``last_type``."""
    received: list[dict] = []
    while not received or received[-1]["type"] != last_type:
        received.append(assert_valid(json.loads(await asyncio.wait_for(ws.recv(), timeout_s))))
    return received


def described(messages: list[dict]) -> list[tuple[str, str | None]]:
    return [(m["type"], m.get("status") or m.get("change")) for m in messages]


async def test_the_feed_drives_a_race_through_its_day_and_a_client_sees_each_step_in_order(
    daphne_server, server_database
):
    race_id = await asyncio.to_thread(server_database.race_of_its_own, copy_of=COPY_OF_RACE)
    token = await asyncio.to_thread(feed_token, daphne_server)

    async def post(path: str, body: object = None) -> int:
        url = daphne_server.http_url(f"/api/races/{race_id}/{path}")
        status, answer = await asyncio.to_thread(post_json, url, body if body is not None else {}, token)
        assert status in (200, 201), answer
        return status

    card = json.loads(await asyncio.to_thread(_get, daphne_server.http_url(f"/api/races/{race_id}/")))
    horses = [s["horse_id"] for s in card["starters"]]
    runners, early, late = horses[:-2], horses[-2], horses[-1]

    def odds(step: int, field: list[int]) -> list[dict]:
        return [{"horse_id": h, "odds": round(2.0 + step * 0.1 + i, 2)} for i, h in enumerate(field)]

    await post(f"starters/{early}/scratch/")  # before the market: the feed takes the race over
    await post("odds/", odds(1, runners + [late]))
    async with race_socket(daphne_server.ws_url(f"/ws/races/{race_id}")) as (ws, initial, _):
        assert initial["data"]["race"]["status"] == "open"
        assert [s["scratched"] for s in initial["data"]["starters"]][-2:] == [True, False]
        assert described(await receive_until(ws, "odds_update")) == [("odds_update", None)]  # the latest, at once

        await post(f"starters/{late}/scratch/")  # a late scratching
        await post(f"starters/{runners[0]}/driver/", {"driver_name": "Blair Orange"})
        start = initial["data"]["race"]["race_datetime"]
        await post("status/", {"status": "open", "race_datetime": _later(start), "reason": "Swab"})
        await post("odds/", odds(2, runners))
        dead_heat = {h: 1 + (n > 1) * n for n, h in enumerate(runners)}  # 1, 1, 3, 4 ...
        await post("results/", _results(dead_heat, official=False))
        await post("status/", {"status": "protest", "reason": "Inquiry"})
        upheld = {**dead_heat, runners[0]: 3, runners[2]: 1}
        await post("results/", _results(upheld))

        day = await receive_until(ws, "result_update")

    assert described(day) == [
        ("starter_update", "scratched"),
        ("starter_update", "driver_changed"),
        ("race_status", "open"),  # the delay
        ("odds_update", None),
        ("race_status", "closed"),
        ("race_status", "interim"),
        ("interim_result", None),
        ("race_status", "protest"),
        ("race_status", "official"),
        ("result_update", None),
    ]
    first_seq = day[0]["seq"]
    assert [m["seq"] for m in day] == list(range(first_seq, first_seq + len(day)))
    assert {o["horse_id"] for o in day[3]["odds"]} == set(runners)  # the scratched are not priced
    assert day[1]["starter"]["driver_name"] == "Blair Orange"
    assert [r["placing"] for r in day[6]["results"]][:3] == [1, 1, 3]
    assert {r["horse_id"] for r in day[-1]["results"]} == set(runners)
    assert day[-1]["results"][0]["horse_id"] == runners[1]  # after the protest: 1, 1 and the new 3


async def test_a_client_back_after_a_scratching_and_a_status_change_gets_both_before_live_updates(
    daphne_server, server_database
):
    race_id = await asyncio.to_thread(server_database.race_of_its_own, copy_of=COPY_OF_RACE)
    token = await asyncio.to_thread(feed_token, daphne_server)

    async def post(path: str, body: object = None) -> None:
        url = daphne_server.http_url(f"/api/races/{race_id}/{path}")
        status, answer = await asyncio.to_thread(post_json, url, body if body is not None else {}, token)
        assert status in (200, 201), answer

    card = json.loads(await asyncio.to_thread(_get, daphne_server.http_url(f"/api/races/{race_id}/")))
    horses = [s["horse_id"] for s in card["starters"]]
    await post("odds/", [{"horse_id": h, "odds": 3.0 + i} for i, h in enumerate(horses)])
    async with race_socket(daphne_server.ws_url(f"/ws/races/{race_id}")) as (ws, initial, _):
        last = (await receive_until(ws, "odds_update"))[-1]
    # ... the connection drops; meanwhile:
    await post(f"starters/{horses[-1]}/scratch/")
    await post("status/", {"status": "closed"})

    resume = {"last_seq": last["seq"], "epoch": initial["epoch"]}
    async with race_socket(daphne_server.ws_url(f"/ws/races/{race_id}"), **resume) as (ws, again, subscribed):
        missed = [assert_valid(json.loads(await asyncio.wait_for(ws.recv(), 10))) for _ in range(2)]
        await post("results/", _results({h: n for n, h in enumerate(horses[:-1], 1)}))
        live = await receive_until(ws, "result_update")

    assert subscribed["resumed"] is True
    assert again["data"]["race"]["status"] == "closed" and again["data"]["starters"][-1]["scratched"] is True
    assert described(missed) == [("starter_update", "scratched"), ("race_status", "closed")]
    assert described(live) == [("race_status", "official"), ("result_update", None)]
    assert [m["seq"] for m in [last, *missed, *live]] == list(range(last["seq"], last["seq"] + 5))


def _get(url: str) -> str:
    import urllib.request

    with urllib.request.urlopen(url, timeout=10) as response:
        return response.read().decode()


def _later(race_datetime: str | None) -> str:
    """Ten minutes after the start (a race copied for a test has none: an hour from now)."""
    import datetime as dt

    if race_datetime is None:
        return (dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)).isoformat()
    return (dt.datetime.fromisoformat(race_datetime) + dt.timedelta(minutes=10)).isoformat()


def _results(placings: dict[int, int | None], **extra: object) -> dict:
    return {
        "results": [{"horse_id": h, "placing": p, "finished": p is not None} for h, p in placings.items()],
        **extra,
    }
