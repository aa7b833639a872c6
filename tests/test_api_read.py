"""The read API: race data for apps that keep no socket open, in the live protocol's shapes."""

from __future__ import annotations

import datetime as dt

import pytest
from channels.testing import WebsocketCommunicator
from django.core.management import call_command
from django.utils import timezone

from races.models import OddsSnapshot, Race
from races.services import odds_snapshot_record, race_result_record
from racing.asgi import application
from tests import factories
from tests.servers import FIXTURE
from tests.spec import assert_valid

pytestmark = pytest.mark.django_db


@pytest.fixture
def race_day():
    call_command("loaddata", str(FIXTURE), verbosity=0)


def test_meetings_are_listed_paginated_and_filtered(client, race_day):
    everything = client.get("/api/meetings/").json()
    on_date = client.get("/api/meetings/", {"date": "2026-12-05"}).json()
    at_venue = client.get("/api/meetings/", {"venue": "addington"}).json()

    assert everything["count"] == 2
    assert everything["results"][0] == {
        "code": "NZ_20261204_ADD",
        "venue": "Addington",
        "date": "2026-12-04",
        "race_count": 9,
    }
    assert [m["code"] for m in on_date["results"]] == ["NZ_20261205_AUK"]
    assert [m["code"] for m in at_venue["results"]] == ["NZ_20261204_ADD"]


def test_a_meeting_comes_with_its_races(client, race_day):
    meeting = client.get("/api/meetings/NZ_20261205_AUK/").json()

    assert meeting["venue"] == "Alexandra Park"
    assert [r["race_number"] for r in meeting["races"]] == list(range(1, 11))
    assert meeting["races"][0]["race_datetime"] == "2026-12-05T12:30:00+13:00"


def test_races_are_listed_and_filtered_by_date_meeting_and_status(client, race_day):
    Race.objects.filter(pk=3).update(status=Race.Status.OFFICIAL)

    all_races = client.get("/api/races/").json()
    by_date = client.get("/api/races/", {"date": "2026-12-04"}).json()
    by_meeting = client.get("/api/races/", {"meeting": "NZ_20261205_AUK"}).json()
    finished = client.get("/api/races/", {"status": "official"}).json()

    assert all_races["count"] == 19
    first = all_races["results"][0]
    assert first["meeting_id"] == "NZ_20261204_ADD" and first["race_number"] == 1
    assert first["starter_count"] >= 8 and first["status"] == "scheduled"
    assert by_date["count"] == 9 and by_meeting["count"] == 10
    assert [r["id"] for r in finished["results"]] == [3]


@pytest.mark.parametrize(
    "url, field",
    [
        ("/api/races/?date=4-12-2026", "date"),
        ("/api/races/?status=running", "status"),
        ("/api/meetings/?date=x", "date"),
    ],
)
def test_bad_filters_are_refused_with_a_field_error(client, url, field):
    response = client.get(url)

    assert response.status_code == 400
    assert field in response.json()["errors"] and field in response.json()["detail"]


@pytest.mark.parametrize("url", ["/api/meetings/", "/api/races/"])
def test_lists_cost_two_queries_however_many_rows(client, django_assert_num_queries, url):
    factories.race_create(starter_count=2)
    with django_assert_num_queries(2):
        client.get(url)
    for _ in range(6):
        factories.race_create(starter_count=12)

    with django_assert_num_queries(2):
        assert client.get(url).status_code == 200


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("stop_live_tasks")
async def test_a_race_reads_exactly_as_initial_state_data(async_client):
    race = await factories.arace_create(starter_count=9)
    communicator = WebsocketCommunicator(application, f"/ws/races/{race.pk}")
    await communicator.connect()
    initial = assert_valid(await communicator.receive_json_from())
    await communicator.disconnect()

    response = await async_client.get(f"/api/races/{race.pk}/")

    assert response.json() == initial["data"]


def test_a_race_reads_in_two_queries(client, django_assert_num_queries):
    race = factories.race_create(starter_count=14)

    with django_assert_num_queries(2):
        assert client.get(f"/api/races/{race.pk}/").status_code == 200


def record_odds(race: Race, minutes: int, price: float) -> None:
    horse_id = race.starters.first().horse_id
    odds_snapshot_record(
        race_id=race.pk,
        odds=[(horse_id, price)],
        source=OddsSnapshot.Source.FEED,
        taken_at=dt.datetime(2026, 12, 4, 6, minutes, tzinfo=dt.UTC),
    )


def test_odds_history_is_oldest_first_and_since_filters_it(client):
    race = factories.race_create(starter_count=2)
    for minutes, price in [(1, 3.0), (2, 2.8), (3, 2.5)]:
        record_odds(race, minutes, price)

    history = client.get(f"/api/races/{race.pk}/odds/").json()
    since = client.get(f"/api/races/{race.pk}/odds/", {"since": "2026-12-04T06:01:00+00:00"}).json()
    latest = client.get(f"/api/races/{race.pk}/odds/latest/").json()

    assert [s["timestamp"] for s in history["results"]] == [
        "2026-12-04T06:01:00.000000+00:00",
        "2026-12-04T06:02:00.000000+00:00",
        "2026-12-04T06:03:00.000000+00:00",
    ]
    assert history["results"][0]["source"] == "feed"
    assert [s["odds"][0]["odds"] for s in since["results"]] == [2.8, 2.5]
    assert latest["timestamp"] == "2026-12-04T06:03:00.000000+00:00"


def test_odds_history_costs_three_queries_however_long(client, django_assert_num_queries):
    race = factories.race_create(starter_count=2)
    record_odds(race, 1, 3.0)
    with django_assert_num_queries(3):
        client.get(f"/api/races/{race.pk}/odds/")
    for minutes in range(2, 40):
        record_odds(race, minutes, 3.0)

    with django_assert_num_queries(3):
        client.get(f"/api/races/{race.pk}/odds/")


@pytest.mark.parametrize("since", ["yesterday", "2026-12-04T06:01:00"])
def test_a_bad_since_is_refused(client, since):
    race = factories.race_create(starter_count=1)

    response = client.get(f"/api/races/{race.pk}/odds/", {"since": since})

    assert response.status_code == 400 and "since" in response.json()["errors"]


def test_a_race_without_odds_or_result_says_so(client):
    race = factories.race_create(starter_count=1)

    latest = client.get(f"/api/races/{race.pk}/odds/latest/")
    results = client.get(f"/api/races/{race.pk}/results/")

    assert latest.status_code == 404 and latest.json() == {"detail": f"Race {race.pk} has no odds yet."}
    assert results.status_code == 404 and "no result declared yet" in results.json()["detail"]


def test_results_read_finishers_by_placing_then_non_finishers(client):
    race = factories.race_create(starter_count=4)
    horse_ids = list(race.starters.values_list("horse_id", flat=True))
    race_result_record(
        race_id=race.pk,
        placings={horse_ids[0]: 2, horse_ids[1]: None, horse_ids[2]: 1, horse_ids[3]: 3},
        declared_at=timezone.now(),
        source="feed",
    )

    body = client.get(f"/api/races/{race.pk}/results/").json()

    assert body["status"] == "official"
    assert body["results"] == [
        {"horse_id": horse_ids[2], "placing": 1, "finished": True},
        {"horse_id": horse_ids[0], "placing": 2, "finished": True},
        {"horse_id": horse_ids[3], "placing": 3, "finished": True},
        {"horse_id": horse_ids[1], "placing": None, "finished": False},
    ]


@pytest.mark.parametrize(
    "url", ["/api/races/999999/", "/api/races/999999/odds/", "/api/races/999999/odds/latest/",
            "/api/races/999999/results/", "/api/meetings/NOPE/", "/api/nothing-here/"]
)  # fmt: skip
def test_what_does_not_exist_is_a_json_404(client, url):
    response = client.get(url)

    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    assert response.json()["detail"]


def test_the_openapi_schema_and_its_docs_are_served(client):
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    docs = client.get("/api/docs/")

    assert schema.status_code == 200
    paths = schema.json()["paths"]
    assert {"/api/races/{race_id}/odds/", "/api/races/{race_id}/results/", "/api/meetings/"} <= set(paths)
    assert "post" in paths["/api/races/{race_id}/odds/"]
    assert docs.status_code == 200 and b"swagger-ui" in docs.content
    assert b"cdn" not in docs.content.lower()


def test_a_meeting_and_a_result_read_in_a_fixed_number_of_queries(client, django_assert_num_queries):
    small = factories.race_create(starter_count=2)
    big = factories.race_create(starter_count=14)
    for race in (small, big):
        horse_ids = list(race.starters.values_list("horse_id", flat=True))
        race_result_record(
            race_id=race.pk,
            placings={h: i for i, h in enumerate(horse_ids, 1)},
            declared_at=timezone.now(),
            source="feed",
        )

    for race in (small, big):
        with django_assert_num_queries(2):
            assert client.get(f"/api/meetings/{race.meeting.code}/").status_code == 200
        with django_assert_num_queries(2):
            assert client.get(f"/api/races/{race.pk}/results/").status_code == 200
