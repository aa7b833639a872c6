"""The write path of a live feed: authenticated, validated, stored, then broadcast."""

from __future__ import annotations

import json

import pytest
from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import Permission, User
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from live.supervisor import simulation_supervisor
from racing.asgi import application
from races.models import OddsSnapshot, Race
from tests import factories
from tests.spec import assert_valid

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def race() -> Race:
    return factories.race_create(starter_count=4)


@pytest.fixture
def horse_ids(race) -> list[int]:
    return list(race.starters.values_list("horse_id", flat=True))


@pytest.fixture
def feed() -> APIClient:
    """A client holding a feed user's token (the 'feed race' permission, not staff)."""
    user = User.objects.create_user("tote-feed")
    user.user_permissions.add(Permission.objects.get(codename="feed_race"))
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    return client


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
    assert race.fed and race.status == Race.Status.LIVE


def test_odds_may_also_come_wrapped_in_an_object(feed, race, horse_ids):
    assert post(feed, f"/api/races/{race.pk}/odds/", {"odds": odds_body(horse_ids)})[0] == 201


BAD_ODDS = {
    "empty list": (lambda h: [], "odds", "may not be empty"),
    "not a list": (lambda h: "3.5", "odds", "Expected a list"),
    "horse_id a string": (lambda h: [{"horse_id": str(h[0]), "odds": 3.5}], "odds", "must be an integer"),
    "odds a string": (lambda h: [{"horse_id": h[0], "odds": "3.5"}], "odds", "must be a number"),
    "odds below 1.01": (lambda h: [{"horse_id": h[0], "odds": 1.0}], "odds", "at least 1.01"),
    "odds with 3 decimals": (lambda h: [{"horse_id": h[0], "odds": 3.555}], "odds", "at most 2 decimal places"),
    "odds missing": (lambda h: [{"horse_id": h[0]}], "odds", "required"),
    "a horse twice": (lambda h: [{"horse_id": h[0], "odds": 3.5}, {"horse_id": h[0], "odds": 4}], "odds", "more than once"),
    "not a starter": (lambda h: [{"horse_id": 987654, "odds": 3.5}], "odds", "987654 is not a starter"),
}


@pytest.mark.parametrize("make_body, field, message", BAD_ODDS.values(), ids=BAD_ODDS.keys())
def test_each_bad_odds_post_is_refused_field_by_field_and_nothing_is_stored(feed, race, horse_ids, make_body, field, message):
    status, body = post(feed, f"/api/races/{race.pk}/odds/", make_body(horse_ids))

    assert status == 400
    assert message in json.dumps(body[field])
    assert not OddsSnapshot.objects.exists()
    assert not Race.objects.get(pk=race.pk).fed


def test_malformed_json_is_a_400_with_a_reason(feed, race):
    response = feed.post(f"/api/races/{race.pk}/odds/", "{oops", content_type="application/json")

    assert response.status_code == 400 and "JSON parse error" in response.json()["detail"]


def test_odds_for_a_finished_race_are_refused(feed, race, horse_ids):
    post(feed, f"/api/races/{race.pk}/results/", results_body(horse_ids))

    status, body = post(feed, f"/api/races/{race.pk}/odds/", odds_body(horse_ids))

    assert status == 409 and "finished" in body["detail"]


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
    assert race.status == Race.Status.FINISHED and race.fed


def entries(horse_ids, placings):
    return {"results": [
        {"horse_id": h, "placing": p, "finished": p is not None} for h, p in zip(horse_ids, placings)
    ]}  # fmt: skip


BAD_RESULTS = {
    "a starter missing": (lambda h: entries(h[:3], [1, 2, 3]), "results", "missing: list every starter"),
    "a horse twice": (lambda h: entries([h[0], h[0], h[1], h[2], h[3]], [1, 2, 3, 4, None]), "results", "more than once"),
    "not a starter": (lambda h: entries([*h, 987654], [1, 2, 3, 4, 5]), "results", "987654 is not a starter"),
    "a gap in placings": (lambda h: entries(h, [1, 2, 4, None]), "results", "1 to 3 without gaps or duplicates, not 1, 2, 4"),
    "a duplicate placing": (lambda h: entries(h, [1, 1, 2, None]), "results", "without gaps or duplicates"),
    "nobody finished": (lambda h: entries(h, [None] * 4), "results", "at least one starter must finish"),
    "finisher without placing": (
        lambda h: {"results": [{"horse_id": x, "placing": None, "finished": True} for x in h]}, "results", "a finisher needs a placing"
    ),
    "non-finisher with placing": (
        lambda h: {"results": [{"horse_id": x, "placing": i, "finished": False} for i, x in enumerate(h, 1)]},
        "results", "must be null for a starter that did not finish",
    ),
    "placing zero": (lambda h: entries(h, [0, 1, 2, 3]), "results", "greater than or equal to 1"),
    "finished missing": (lambda h: {"results": [{"horse_id": x, "placing": 1} for x in h]}, "results", "required"),
    "results missing": (lambda h: {}, "results", "required"),
    "correction not a boolean": (lambda h: {**entries(h, [1, 2, 3, None]), "correction": "maybe"}, "correction", "valid boolean"),
}  # fmt: skip


@pytest.mark.parametrize("make_body, field, message", BAD_RESULTS.values(), ids=BAD_RESULTS.keys())
def test_each_bad_result_is_refused_field_by_field_and_nothing_is_stored(feed, race, horse_ids, make_body, field, message):
    status, body = post(feed, f"/api/races/{race.pk}/results/", make_body(horse_ids))

    assert status == 400
    assert message in json.dumps(body[field])
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
    communicator = WebsocketCommunicator(application, f"/ws/races/{race_id}")
    assert (await communicator.connect())[0]
    assert (await communicator.receive_json_from())["type"] == "initial_state"
    await communicator.send_json_to({"type": "subscribe", "race_id": race_id})
    assert (await communicator.receive_json_from())["type"] == "subscribed"
    return communicator


@pytest.mark.usefixtures("stop_live_tasks")
async def test_accepted_odds_and_results_reach_connected_clients_after_commit(feed, race, horse_ids):
    client = await connect(race.pk)

    odds_status, _ = await sync_to_async(post)(feed, f"/api/races/{race.pk}/odds/", odds_body(horse_ids))
    odds = assert_valid(await client.receive_json_from())
    result_status, _ = await sync_to_async(post)(feed, f"/api/races/{race.pk}/results/", results_body(horse_ids))
    result = assert_valid(await client.receive_json_from())
    again, _ = await sync_to_async(post)(feed, f"/api/races/{race.pk}/results/", results_body(horse_ids))

    assert (odds_status, result_status, again) == (201, 201, 200)
    assert odds["odds"] == odds_body(horse_ids)
    assert result["results"] == results_body(horse_ids)["results"]
    assert await client.receive_nothing(timeout=0.2)  # the identical re-post broadcast nothing
    await client.disconnect()


@pytest.mark.usefixtures("stop_live_tasks")
async def test_a_correction_is_broadcast_again(feed, race, horse_ids):
    client = await connect(race.pk)
    await sync_to_async(post)(feed, f"/api/races/{race.pk}/results/", results_body(horse_ids))
    await client.receive_json_from()
    protest = results_body([horse_ids[1], horse_ids[0], horse_ids[2], horse_ids[3]], correction=True)

    await sync_to_async(post)(feed, f"/api/races/{race.pk}/results/", protest)

    corrected = assert_valid(await client.receive_json_from())
    assert corrected["results"][0]["horse_id"] == horse_ids[1]
    await client.disconnect()


@pytest.mark.usefixtures("stop_live_tasks")
async def test_a_fed_race_stops_its_simulation_and_never_starts_it_again(feed, race, horse_ids, settings):
    settings.SIMULATION_SPEEDUP = 10  # simulated odds every 0.5-1 s
    settings.SIMULATION_HEARTBEAT_S = 0.05
    client = await connect(race.pk)
    simulated = await client.receive_json_from(timeout=3)
    assert simulated["type"] == "odds_update"

    await sync_to_async(post)(feed, f"/api/races/{race.pk}/odds/", odds_body(horse_ids))
    fed_odds = await client.receive_json_from()
    late = await connect(race.pk)  # a new viewer of a fed race starts nothing
    await late.receive_json_from()  # the feed's latest odds, at once

    assert fed_odds["odds"] == odds_body(horse_ids)
    assert await client.receive_nothing(timeout=1.5)  # no simulated update after the feed's
    assert simulation_supervisor().simulations == {}
    sources = await database_sync_to_async(lambda: list(OddsSnapshot.objects.values_list("source", flat=True)))()
    assert sources[-1] == "feed" and sources.count("feed") == 1
    await client.disconnect()
    await late.disconnect()
