"""
Hostile input to the REST API: every bad request is a 4xx with a JSON body that says what is wrong,
never a 500 or an HTML page, and nothing is stored or broadcast when it is refused.
"""

from __future__ import annotations

import json
from unittest import mock

import pytest
from asgiref.sync import sync_to_async
from django.urls import reverse
from rest_framework.test import APIClient

from races.api import MAX_STARTERS, OddsPost
from races.converters import DATABASE_ID_MAX
from races.models import OddsSnapshot, Race, RaceUpdate
from races.serializers import HorseOddsSerializer, ResultEntrySerializer
from tests import factories
from tests.spec import assert_valid
from tests.test_api_feed import connect, odds_body, results_body
from tests.test_api_read import record_odds

pytestmark = pytest.mark.django_db


@pytest.fixture
def race() -> Race:
    return factories.race_create(starter_count=4)


@pytest.fixture
def horse_ids(race) -> list[int]:
    return list(race.starters.values_list("horse_id", flat=True))


TOO_BIG_ID = DATABASE_ID_MAX + 1  # 9223372036854775808: past a signed 64-bit integer


def assert_json_error(response, status: int) -> dict:
    """Assert that ``response`` is the API's JSON error body with ``status``; return the body."""
    assert response.status_code == status, response.content[:300]
    assert response["Content-Type"] == "application/json"
    body = response.json()
    assert isinstance(body["detail"], str) and body["detail"] and set(body) <= {"detail", "errors"}, body
    return body


def errors_of(response, status: int) -> dict:
    """Assert that ``response`` is a field-by-field refusal with ``status``; return its errors."""
    return assert_json_error(response, status)["errors"]


def assert_nothing_stored(race: Race) -> None:
    race.refresh_from_db()
    assert not OddsSnapshot.objects.filter(race=race).exists()
    assert not RaceUpdate.objects.filter(race=race).exists()
    assert not race.starters.filter(placing__isnull=False).exists()
    assert race.status == Race.Status.SCHEDULED and not race.fed


def post_raw(client: APIClient, url: str, body: str | bytes, content_type: str = "application/json"):
    return client.post(url, body, content_type=content_type)


# --- ?since= ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "since",
    [
        "2026-13-45T00:00:00%2B00:00",  # month 13: a ValueError inside parse_datetime
        "2026-01-01T00:00:00%2B99:00",  # an offset of 99 hours: a ValueError too
        "9999-12-31T23:59:59-23:59",  # the year 10000 in UTC: an OverflowError
        "0001-01-01T00:00:00%2B23:59",  # the year 0 in UTC: an OverflowError
        "2026-12-04T06:01:00",  # no offset
        "%00",
    ],
)
def test_a_since_that_is_no_moment_is_a_400_saying_what_is_accepted(client, race, since):
    response = client.get(f"/api/races/{race.pk}/odds/?since={since}")

    problem = errors_of(response, 400)["since"][0]
    assert "ISO 8601 date-time with its UTC offset" in problem and "years 1 and 9999" in problem


def test_a_since_with_any_real_offset_is_compared_in_utc(client, race):
    record_odds(race, 1, 3.0)
    record_odds(race, 2, 2.8)

    # 20 hours ahead of UTC: an offset Python accepts and PostgreSQL refuses in a query.
    response = client.get(f"/api/races/{race.pk}/odds/", {"since": "2026-12-05T02:01:00+20:00"})

    assert response.status_code == 200
    assert [s["timestamp"] for s in response.json()["results"]] == ["2026-12-04T06:02:00.000000+00:00"]


# --- Ids in the path --------------------------------------------------------------------------

RACE_ROUTES = ["/api/races/{}/", "/api/races/{}/odds/", "/api/races/{}/odds/latest/", "/api/races/{}/results/"]
IDS_NO_DATABASE_HOLDS = [0, TOO_BIG_ID, 10**30, "0" * 20 + "1"]


@pytest.mark.parametrize("race_id", IDS_NO_DATABASE_HOLDS, ids=str)
@pytest.mark.parametrize("route", RACE_ROUTES)
def test_a_race_id_no_database_holds_is_the_apis_json_404(client, route, race_id):
    url = route.format(race_id)

    assert assert_json_error(client.get(url), 404) == {"detail": f"Nothing at {url}."}


@pytest.mark.parametrize("route", ["/api/races/{}/odds/", "/api/races/{}/results/"])
def test_a_post_to_a_race_id_no_database_holds_is_a_json_404(feed, race, route):
    response = feed.post(route.format(TOO_BIG_ID), [], format="json")

    assert_json_error(response, 404)
    assert_nothing_stored(race)


def test_the_largest_id_a_database_holds_still_reaches_the_view(client):
    response = client.get(f"/api/races/{DATABASE_ID_MAX}/odds/latest/")

    assert assert_json_error(response, 404) == {"detail": f"Race {DATABASE_ID_MAX} does not exist."}


@pytest.mark.parametrize("race_id", IDS_NO_DATABASE_HOLDS, ids=str)
def test_a_race_page_for_an_id_no_database_holds_is_a_404(client, race_id):
    assert client.get(f"/races/{race_id}/").status_code == 404


def test_race_urls_are_still_reversed_from_their_ids(race):
    assert reverse("race-odds", args=[race.pk]) == f"/api/races/{race.pk}/odds/"
    assert reverse("race-page", args=[race.pk]) == f"/races/{race.pk}/"


# --- Text in the path and the query (PostgreSQL refuses NUL in text) --------------------------


def test_a_meeting_code_with_a_nul_is_a_json_404(client):
    assert_json_error(client.get("/api/meetings/NZ%00/"), 404)


@pytest.mark.parametrize(
    "url, field", [("/api/meetings/?venue=a%00", "venue"), ("/api/races/?meeting=a%00", "meeting")]
)
def test_a_filter_with_a_nul_is_a_400(client, url, field):
    assert errors_of(client.get(url), 400) == {field: ["must not contain NUL characters."]}


# --- ?page= and the race day's ?date= ---------------------------------------------------------


@pytest.mark.parametrize("page", ["99999999999999999999", "-1", "0", "abc", "%00"])
@pytest.mark.parametrize("route", ["/api/meetings/", "/api/races/", "/api/races/{race_id}/odds/"])
def test_a_page_that_does_not_exist_is_a_json_404(client, race, route, page):
    response = client.get(f"{route.format(race_id=race.pk)}?page={page}")

    assert assert_json_error(response, 404)["detail"] == "Invalid page."


@pytest.mark.parametrize("date", ["9999-12-31", "0001-01-01", "99999-01-01", "2026-13-45", "%00", "x" * 1000])
def test_the_race_day_page_shows_any_date_asked_for_without_an_error(client, date):
    assert client.get(f"/?date={date}").status_code == 200


# --- Bodies the parser refuses ----------------------------------------------------------------

WRITE_ROUTES = ["/api/races/{}/odds/", "/api/races/{}/results/"]


@pytest.mark.parametrize("route", WRITE_ROUTES)
def test_a_body_nested_too_deeply_to_parse_is_a_400(feed, race, route):
    response = post_raw(feed, route.format(race.pk), "[" * 100_000)

    assert assert_json_error(response, 400) == {"detail": "JSON parse error - nested too deeply."}
    assert_nothing_stored(race)


@pytest.mark.parametrize("route", WRITE_ROUTES)
def test_a_body_over_the_size_limit_is_a_413_saying_the_limit(feed, race, route, settings):
    body = json.dumps({"odds": [{"horse_id": 1, "odds": 2.5}] * 200_000})  # 6 MB
    assert len(body) > settings.DATA_UPLOAD_MAX_MEMORY_SIZE

    response = post_raw(feed, route.format(race.pk), body)

    detail = assert_json_error(response, 413)["detail"]
    assert f"larger than the {settings.DATA_UPLOAD_MAX_MEMORY_SIZE} bytes" in detail
    assert_nothing_stored(race)


@pytest.mark.parametrize(
    "body, content_type",
    [("odds=2.5", "application/x-www-form-urlencoded"), ("--x--\r\n", "multipart/form-data; boundary=x")],
)
def test_a_body_that_is_not_json_is_a_415(feed, race, body, content_type):
    response = post_raw(feed, f"/api/races/{race.pk}/odds/", body, content_type)

    assert "Unsupported media type" in assert_json_error(response, 415)["detail"]
    assert_nothing_stored(race)


# --- More entries than starters ---------------------------------------------------------------


def test_forty_thousand_odds_are_refused_for_their_number_before_any_is_validated(feed, race, horse_ids):
    entries = [{"horse_id": horse_ids[0], "odds": 2.5}] * 40_000

    with mock.patch.object(HorseOddsSerializer, "run_validation") as validate_entry:
        response = feed.post(f"/api/races/{race.pk}/odds/", entries, format="json")

    assert errors_of(response, 400) == {"odds": ["Ensure this field has no more than 40 elements."]}
    validate_entry.assert_not_called()
    assert_nothing_stored(race)


def test_forty_thousand_results_are_refused_for_their_number_before_any_is_validated(feed, race, horse_ids):
    entries = [{"horse_id": horse_ids[0], "placing": 1, "finished": True}] * 40_000

    with mock.patch.object(ResultEntrySerializer, "run_validation") as validate_entry:
        response = feed.post(f"/api/races/{race.pk}/results/", {"results": entries}, format="json")

    assert errors_of(response, 400) == {"results": ["Ensure this field has no more than 40 elements."]}
    validate_entry.assert_not_called()
    assert_nothing_stored(race)


def test_one_entry_more_than_the_starters_is_refused_too(feed, race, horse_ids):
    entries = odds_body(horse_ids) + [{"horse_id": 987654, "odds": 9.0}]

    response = feed.post(f"/api/races/{race.pk}/odds/", {"odds": entries}, format="json")

    assert "too many entries: 5, and race" in errors_of(response, 422)["odds"][0]


def test_the_odds_serializer_validates_no_more_than_its_bound_of_entries_whatever_the_race():
    entries = [{"horse_id": horse_id, "odds": 2.5} for horse_id in range(MAX_STARTERS + 1)]
    incoming = OddsPost(data={"odds": entries})

    with mock.patch.object(HorseOddsSerializer, "run_validation") as validate_entry:
        assert not incoming.is_valid()

    assert f"no more than {MAX_STARTERS} elements" in str(incoming.errors["odds"])
    validate_entry.assert_not_called()


def test_every_horse_listed_twice_is_named_once(feed, race, horse_ids):
    first, second, *_ = horse_ids
    entries = [{"horse_id": h, "odds": 3.0} for h in (second, first, second, first)]

    response = feed.post(f"/api/races/{race.pk}/odds/", entries, format="json")

    assert errors_of(response, 422) == {"odds": [f"horse {first}, {second} listed more than once."]}


# --- Strict booleans --------------------------------------------------------------------------

NOT_BOOLEANS = ["yes", "true", "True", "on", "1", 1, 0, None]


@pytest.mark.parametrize("finished", NOT_BOOLEANS, ids=repr)
def test_finished_must_be_json_true_or_false(feed, race, horse_ids, finished):
    body = results_body(horse_ids)
    body["results"][0]["finished"] = finished

    response = feed.post(f"/api/races/{race.pk}/results/", body, format="json")

    expected = "This field may not be null." if finished is None else "must be true or false."
    assert errors_of(response, 400) == {"results": {"0": {"finished": [expected]}}}
    assert_nothing_stored(race)


@pytest.mark.parametrize("correction", NOT_BOOLEANS, ids=repr)
def test_correction_must_be_json_true_or_false(feed, race, horse_ids, correction):
    response = feed.post(
        f"/api/races/{race.pk}/results/", results_body(horse_ids, correction=correction), format="json"
    )

    expected = "This field may not be null." if correction is None else "must be true or false."
    assert errors_of(response, 400) == {"correction": [expected]}
    assert_nothing_stored(race)


# --- Nothing broadcast ------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("stop_live_tasks")
async def test_refused_posts_broadcast_nothing(feed, race, horse_ids, settings):
    settings.SIMULATION_ENABLED = False  # only the feed's posts may reach the client
    client = await connect(race.pk)
    odds_url, results_url = f"/api/races/{race.pk}/odds/", f"/api/races/{race.pk}/results/"
    finished_yes = results_body(horse_ids)
    finished_yes["results"][0]["finished"] = "yes"
    refused = [
        (odds_url, "[" * 100_000),
        (odds_url, json.dumps([{"horse_id": horse_ids[0], "odds": 2.5}] * 40_000)),
        (results_url, json.dumps(finished_yes)),
        (results_url, json.dumps(results_body(horse_ids, correction="yes"))),
        (results_url, json.dumps({"results": [{"horse_id": 1, "placing": 1, "finished": True}] * 200_000})),
    ]

    statuses = [(await sync_to_async(post_raw)(feed, url, body)).status_code for url, body in refused]
    accepted = await sync_to_async(post_raw)(feed, odds_url, json.dumps(odds_body(horse_ids)))

    assert statuses == [400, 400, 400, 400, 413] and accepted.status_code == 201
    opened, odds = assert_valid(await client.receive_json_from()), assert_valid(await client.receive_json_from())
    assert (opened["type"], opened["seq"], opened["status"]) == ("race_status", 1, "open")  # the first update
    assert odds["type"] == "odds_update" and odds["odds"] == odds_body(horse_ids)
    await client.disconnect()
