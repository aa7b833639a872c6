"""The write path of a live feed: authenticated, validated, stored, then broadcast."""

from __future__ import annotations

import json

import pytest
from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import User
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from live.market.supervisor import simulation_supervisor
from races.models import OddsSnapshot, Race
from racing.asgi import application
from tests import factories
from tests.spec import assert_valid

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def race() -> Race:
    return factories.race_create(starter_count=4)


@pytest.fixture
def horse_ids(race) -> list[int]:
    return list(race.starters.values_list("horse_id", flat=True))


def post(client: APIClient, url: str, body) -> tuple[int, dict]:
    response = client.post(url, json.dumps(body), content_type="application/json")
    return response.status_code, response.json()


def odds_body(horse_ids: list[int]) -> list[dict]:
    return [{"horse_id": h, "odds": 2.5 + i} for i, h in enumerate(horse_ids)]


def results_body(horse_ids: list[int], **extra) -> dict:
    *finishers, faller = horse_ids
    return {
        "results": [{"horse_id": h, "placing": i, "finished": True} for i, h in enumerate(finishers, 1)]
        + [{"horse_id": faller, "placing": None, "finished": False}],
        **extra,
    }


# --- Who may write ----------------------------------------------------------------------------


def test_writing_without_a_token_is_401(race, horse_ids):
    status, body = post(APIClient(), f"/api/races/{race.pk}/odds/", odds_body(horse_ids))

    assert status == 401 and "credentials" in body["detail"]


def test_a_user_without_the_feed_permission_is_403(race, horse_ids):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=User.objects.create_user('fan')).key}")

    status, body = post(client, f"/api/races/{race.pk}/results/", results_body(horse_ids))

    assert status == 403 and "feed" in body["detail"]
    assert not Race.objects.get(pk=race.pk).fed


def test_a_wrong_token_is_401(race, horse_ids):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Token not-a-token")

    assert post(client, f"/api/races/{race.pk}/odds/", odds_body(horse_ids))[0] == 401


def test_staff_may_write_too(race, horse_ids):
    client = APIClient()
    client.force_authenticate(User.objects.create_user("office", is_staff=True))

    assert post(client, f"/api/races/{race.pk}/odds/", odds_body(horse_ids))[0] == 201


# --- Odds -------------------------------------------------------------------------------------


def test_accepted_odds_are_stored_and_the_race_becomes_fed(feed, race, horse_ids):
    status, body = post(feed, f"/api/races/{race.pk}/odds/", odds_body(horse_ids))

    assert status == 201
    assert body["odds"] == odds_body(horse_ids) and body["timestamp"].endswith("+00:00")
    snapshot = OddsSnapshot.objects.get(race=race)
    assert snapshot.source == "feed" and snapshot.odds == odds_body(horse_ids)
    race.refresh_from_db()
    assert race.fed and race.status == Race.Status.OPEN


def test_a_horse_id_written_with_a_fraction_is_the_integer_it_is(feed, race, horse_ids):
    body = [{"horse_id": float(h), "odds": 2.5} for h in horse_ids]  # 42.0: JSON counts it as 42

    status, accepted = post(feed, f"/api/races/{race.pk}/odds/", body)

    assert status == 201 and [o["horse_id"] for o in accepted["odds"]] == horse_ids


def test_odds_may_also_come_wrapped_in_an_object(feed, race, horse_ids):
    assert post(feed, f"/api/races/{race.pk}/odds/", {"odds": odds_body(horse_ids)})[0] == 201


# 400: the body does not follow the schema; 422: it does, but does not fit the race.
BAD_ODDS = {
    "empty list": (lambda h: [], 400, "odds", "may not be empty"),
    "not a list": (lambda h: "3.5", 400, "odds", "Expected a list"),
    "horse_id a string": (lambda h: [{"horse_id": str(h[0]), "odds": 3.5}], 400, "odds", "must be an integer"),
    "horse_id zero": (lambda h: [{"horse_id": 0, "odds": 3.5}], 400, "odds", "must be a horse id"),
    "odds a string": (lambda h: [{"horse_id": h[0], "odds": "3.5"}], 400, "odds", "must be a number"),
    "odds below 1.01": (lambda h: [{"horse_id": h[0], "odds": 1.0}], 400, "odds", "at least 1.01"),
    "odds over 99999.99": (lambda h: [{"horse_id": h[0], "odds": 100000}], 400, "odds", "at most 99999.99"),
    "odds with 3 decimals": (lambda h: [{"horse_id": h[0], "odds": 3.555}], 400, "odds", "at most 2 decimal places"),
    "odds missing": (lambda h: [{"horse_id": h[0]}], 400, "odds", "required"),
    "a horse twice": (
        lambda h: [{"horse_id": h[0], "odds": 3.5}, {"horse_id": h[0], "odds": 4}],
        422,
        "odds",
        "more than once",
    ),
    "not a starter": (lambda h: [{"horse_id": 987654, "odds": 3.5}], 422, "odds", "987654 is not a starter"),
}


@pytest.mark.parametrize("make_body, code, field, message", BAD_ODDS.values(), ids=BAD_ODDS.keys())
def test_each_bad_odds_post_is_refused_field_by_field_and_nothing_is_stored(
    feed, race, horse_ids, make_body, code, field, message
):
    status, body = post(feed, f"/api/races/{race.pk}/odds/", make_body(horse_ids))

    assert status == code
    assert message in json.dumps(body["errors"][field]) and message in body["detail"]
    assert not OddsSnapshot.objects.exists()
    assert not Race.objects.get(pk=race.pk).fed


def test_malformed_json_is_a_400_with_a_reason(feed, race):
    response = feed.post(f"/api/races/{race.pk}/odds/", "{oops", content_type="application/json")

    assert response.status_code == 400 and "JSON parse error" in response.json()["detail"]


def test_odds_for_a_finished_race_are_refused(feed, race, horse_ids):
    post(feed, f"/api/races/{race.pk}/results/", results_body(horse_ids))

    status, body = post(feed, f"/api/races/{race.pk}/odds/", odds_body(horse_ids))

    assert status == 409 and "official" in body["detail"] and "market is closed" in body["detail"]


def test_a_race_that_does_not_exist_is_404(feed, horse_ids):
    assert post(feed, "/api/races/999999/odds/", odds_body(horse_ids))[0] == 404


# --- Results ----------------------------------------------------------------------------------


def test_a_declared_result_is_stored_in_one_go(feed, race, horse_ids):
    status, body = post(feed, f"/api/races/{race.pk}/results/", results_body(horse_ids))

    assert status == 201 and body["change"] == "declared"
    assert body["results"] == results_body(horse_ids)["results"]
    stored = dict(race.starters.values_list("horse_id", "placing"))
    assert stored == {horse_ids[0]: 1, horse_ids[1]: 2, horse_ids[2]: 3, horse_ids[3]: None}
    assert race.starters.get(horse_id=horse_ids[3]).did_not_finish
    race.refresh_from_db()
    assert race.status == Race.Status.OFFICIAL and race.fed


def entries(horse_ids, placings):
    return {"results": [
        {"horse_id": h, "placing": p, "finished": p is not None} for h, p in zip(horse_ids, placings, strict=False)
    ]}  # fmt: skip


BAD_RESULTS = {
    "a starter missing": (lambda h: entries(h[:3], [1, 2, 3]), 422, "results", "missing: list every runner"),
    "a horse twice": (lambda h: entries([h[0], h[0], h[1], h[2]], [1, 2, 3, None]), 422, "results", "more than once"),
    "not a starter": (lambda h: entries([*h[:3], 987654], [1, 2, 3, 4]), 422, "results", "987654 is not a starter"),
    "a gap in placings": (lambda h: entries(h, [1, 2, 4, None]), 422, "results", "must rank them 1, 2, 3 ..., a dead heat sharing a placing and the next skipping (1, 1, 3), not 1, 2, 4"),
    "a dead heat without the skip": (lambda h: entries(h, [1, 1, 2, None]), 422, "results", "(1, 1, 3), not 1, 1, 2"),
    "nobody finished": (lambda h: entries(h, [None] * 4), 422, "results", "at least one starter must finish"),
    "finisher without placing": (
        lambda h: {"results": [{"horse_id": x, "placing": None, "finished": True} for x in h]}, 400, "results", "a finisher needs a placing"
    ),
    "non-finisher with placing": (
        lambda h: {"results": [{"horse_id": x, "placing": i, "finished": False} for i, x in enumerate(h, 1)]},
        400, "results", "must be null for a starter that did not finish",
    ),
    "placing zero": (lambda h: entries(h, [0, 1, 2, 3]), 400, "results", "greater than or equal to 1"),
    "placing over 40": (lambda h: entries(h, [41, 1, 2, 3]), 400, "results", "less than or equal to 40"),
    "finished missing": (lambda h: {"results": [{"horse_id": x, "placing": 1} for x in h]}, 400, "results", "required"),
    "results missing": (lambda h: {}, 400, "results", "required"),
    "correction not a boolean": (lambda h: {**entries(h, [1, 2, 3, None]), "correction": "maybe"}, 400, "correction", "must be true or false"),
}  # fmt: skip


@pytest.mark.parametrize("make_body, code, field, message", BAD_RESULTS.values(), ids=BAD_RESULTS.keys())
def test_each_bad_result_is_refused_field_by_field_and_nothing_is_stored(
    feed, race, horse_ids, make_body, code, field, message
):
    status, body = post(feed, f"/api/races/{race.pk}/results/", make_body(horse_ids))

    assert status == code
    assert message in json.dumps(body["errors"][field])
    assert not race.starters.filter(placing__isnull=False).exists()
    race.refresh_from_db()
    assert race.status == Race.Status.SCHEDULED and not race.fed


def test_an_identical_repost_changes_nothing_and_returns_the_stored_result(feed, race, horse_ids):
    first = post(feed, f"/api/races/{race.pk}/results/", results_body(horse_ids))[1]

    status, body = post(feed, f"/api/races/{race.pk}/results/", results_body(horse_ids))

    assert status == 200 and body["change"] == "unchanged"
    assert body["results"] == first["results"] and body["timestamp"] == first["timestamp"]


def test_a_different_result_needs_an_explicit_correction(feed, race, horse_ids):
    post(feed, f"/api/races/{race.pk}/results/", results_body(horse_ids))
    protest = results_body([horse_ids[1], horse_ids[0], horse_ids[2], horse_ids[3]])

    refused_status, refused = post(feed, f"/api/races/{race.pk}/results/", protest)
    status, corrected = post(feed, f"/api/races/{race.pk}/results/", {**protest, "correction": True})

    assert refused_status == 409 and "correction" in refused["detail"]
    assert refused["results"][0] == {"horse_id": horse_ids[0], "placing": 1, "finished": True}
    assert status == 200 and corrected["change"] == "corrected"
    assert corrected["results"][0] == {"horse_id": horse_ids[1], "placing": 1, "finished": True}


# --- Broadcast --------------------------------------------------------------------------------


async def connect(race_id: int) -> WebsocketCommunicator:
    """Connect a client that only listens: after initial_state, the race's updates stream."""
    communicator = WebsocketCommunicator(application, f"/ws/races/{race_id}")
    assert (await communicator.connect())[0]
    assert (await communicator.receive_json_from())["type"] == "initial_state"
    return communicator


async def receive_types(communicator: WebsocketCommunicator, *types: str) -> list[dict]:
    """Receive the next messages, which must be of ``types`` in that order."""
    messages = [assert_valid(await communicator.receive_json_from()) for _ in types]
    assert [m["type"] for m in messages] == list(types)
    return messages


@pytest.mark.usefixtures("stop_live_tasks")
async def test_accepted_odds_and_results_reach_connected_clients_after_commit(feed, race, horse_ids):
    client = await connect(race.pk)

    odds_status, _ = await sync_to_async(post)(feed, f"/api/races/{race.pk}/odds/", odds_body(horse_ids))
    opened, odds = await receive_types(client, "race_status", "odds_update")  # the first odds open the market
    result_status, _ = await sync_to_async(post)(feed, f"/api/races/{race.pk}/results/", results_body(horse_ids))
    closed, official, result = await receive_types(client, "race_status", "race_status", "result_update")
    again, _ = await sync_to_async(post)(feed, f"/api/races/{race.pk}/results/", results_body(horse_ids))

    assert (odds_status, result_status, again) == (201, 201, 200)
    assert odds["odds"] == odds_body(horse_ids)
    assert [m["status"] for m in (opened, closed, official)] == ["open", "closed", "official"]
    assert result["results"] == results_body(horse_ids)["results"]
    assert [m["seq"] for m in (opened, odds, closed, official, result)] == [1, 2, 3, 4, 5]
    assert await client.receive_nothing(timeout=0.2)  # the identical re-post broadcast nothing
    await client.disconnect()


@pytest.mark.usefixtures("stop_live_tasks")
async def test_a_correction_is_broadcast_again(feed, race, horse_ids):
    client = await connect(race.pk)
    await sync_to_async(post)(feed, f"/api/races/{race.pk}/results/", results_body(horse_ids))
    await receive_types(client, "race_status", "race_status", "result_update")  # closed, official, result
    protest = results_body([horse_ids[1], horse_ids[0], horse_ids[2], horse_ids[3]], correction=True)

    await sync_to_async(post)(feed, f"/api/races/{race.pk}/results/", protest)

    (corrected,) = await receive_types(client, "result_update")  # official still: no status change
    assert corrected["results"][0]["horse_id"] == horse_ids[1]
    await client.disconnect()


@pytest.mark.usefixtures("stop_live_tasks")
async def test_a_fed_race_stops_its_simulation_and_never_starts_it_again(feed, race, horse_ids, settings):
    settings.SIMULATION_SPEEDUP = 10  # simulated odds every 0.5-1 s
    settings.SIMULATION_HEARTBEAT_S = 0.05
    client = await connect(race.pk)
    opened = await client.receive_json_from(timeout=3)
    while opened["type"] == "starter_update":  # the simulator's scratchings before its market
        opened = await client.receive_json_from(timeout=3)
    simulated = await client.receive_json_from(timeout=3)
    assert (opened["type"], simulated["type"]) == ("race_status", "odds_update")  # the simulator opened it
    runners = [o["horse_id"] for o in simulated["odds"]]

    await sync_to_async(post)(feed, f"/api/races/{race.pk}/odds/", odds_body(runners))
    (fed_odds,) = await receive_types(client, "odds_update")
    late = await connect(race.pk)  # a new viewer of a fed race starts nothing
    await late.receive_json_from()  # the feed's latest odds, at once

    assert fed_odds["odds"] == odds_body(runners)
    assert await client.receive_nothing(timeout=1.5)  # no simulated update after the feed's
    assert simulation_supervisor().simulations == {}
    sources = await database_sync_to_async(lambda: list(OddsSnapshot.objects.values_list("source", flat=True)))()
    assert sources[-1] == "feed" and sources.count("feed") == 1
    await client.disconnect()
    await late.disconnect()
