"""The feed drives a race's whole day: statuses, delays, scratchings, driver changes, interim and
official results with dead heats and protests; each write answered, stored and broadcast once."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from rest_framework.test import APIClient

from races.models import Race, RaceStatusChange, RaceUpdate, Starter, StarterChange
from racing.asgi import application
from tests import factories
from tests.spec import assert_valid

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def race() -> Race:
    return factories.race_create(starter_count=5)


@pytest.fixture
def horse_ids(race) -> list[int]:
    return list(race.starters.order_by("runner_number").values_list("horse_id", flat=True))


def post(client: APIClient, url: str, body=None) -> tuple[int, dict]:
    response = client.post(url, json.dumps(body if body is not None else {}), content_type="application/json")
    return response.status_code, response.json()


def move(feed: APIClient, race: Race, status: str, **extra) -> tuple[int, dict]:
    return post(feed, f"/api/races/{race.pk}/status/", {"status": status, **extra})


def starter_url(race: Race, horse_id: int, action: str) -> str:
    return f"/api/races/{race.pk}/starters/{horse_id}/{action}/"


def odds_body(horse_ids: list[int]) -> list[dict]:
    return [{"horse_id": h, "odds": 2.5 + i} for i, h in enumerate(horse_ids)]


def results_body(placings: dict[int, int | None], **extra) -> dict:
    return {
        "results": [{"horse_id": h, "placing": p, "finished": p is not None} for h, p in placings.items()],
        **extra,
    }


def logged(race: Race) -> list[tuple[int, str]]:
    return list(RaceUpdate.objects.filter(race=race).order_by("seq").values_list("seq", "kind"))


# --- Status -----------------------------------------------------------------------------------


def test_a_race_moves_open_then_closed_each_move_stored_with_its_source(feed, race):
    opened, body = move(feed, race, "open")
    closed, body = move(feed, race, "closed", reason="They're racing")

    assert (opened, closed) == (201, 201)
    assert body["status"] == "closed" and body["allowed"] == ["interim", "official", "abandoned"]
    assert [(c["previous"], c["status"], c["source"]) for c in body["changes"]] == [
        ("scheduled", "open", "feed"),
        ("open", "closed", "feed"),
    ]
    assert body["changes"][-1]["reason"] == "They're racing"
    assert logged(race) == [(1, "status"), (2, "status")]
    assert RaceStatusChange.objects.filter(race=race).count() == 2


def test_the_same_status_again_is_200_and_changes_nothing(feed, race):
    move(feed, race, "open")

    status, body = move(feed, race, "open")

    assert status == 200 and body["change"] == "unchanged"
    assert logged(race) == [(1, "status")]


@pytest.mark.parametrize(
    "path, wanted, allowed",
    [
        ([], "interim", None),  # needs placings: a result post
        (["open"], "protest", ["closed", "abandoned"]),
        (["open", "closed", "abandoned"], "open", []),
    ],
)
def test_a_move_the_status_does_not_allow_is_409_with_the_allowed_ones(feed, race, path, wanted, allowed):
    for status in path:
        assert move(feed, race, status)[0] == 201

    status, body = move(feed, race, wanted)

    assert status == 409 and body["detail"]
    if allowed is not None:
        assert body["allowed"] == allowed
    assert len(logged(race)) == len(path)


def test_the_status_of_a_race_reads_with_where_it_can_go(client, race):
    response = client.get(f"/api/races/{race.pk}/status/")

    assert response.status_code == 200
    assert response.json()["status"] == "scheduled" and response.json()["allowed"] == ["open", "closed", "abandoned"]
    assert response.json()["changes"] == []


def test_a_delay_moves_the_start_and_keeps_the_status(feed, race):
    later = race.race_datetime + dt.timedelta(minutes=12)

    status, body = move(feed, race, "scheduled", race_datetime=later.isoformat(), reason="Swab")

    assert status == 201 and body["status"] == "scheduled"
    race.refresh_from_db()
    assert race.race_datetime == later
    update = RaceUpdate.objects.get(race=race)
    assert update.data["previous"] == update.data["status"] == "scheduled" and update.data["reason"] == "Swab"


@pytest.mark.parametrize(
    "race_datetime",
    ["0200-12-23T03:57:41Z", "2026-12-20T06:30:00+00:00", "9999-12-31T23:59:59-23:59", "0001-01-01T00:00:00+14:00"],
)
def test_a_start_moved_further_than_a_week_or_off_the_calendar_is_refused(feed, race, race_datetime):
    status, body = move(feed, race, "scheduled", race_datetime=race_datetime)

    assert status in (400, 422) and body["errors"]["race_datetime"]
    race.refresh_from_db()
    assert race.race_datetime == dt.datetime(2026, 12, 4, 6, 30, tzinfo=dt.UTC) and not logged(race)


def test_a_closed_race_cannot_be_delayed(feed, race):
    move(feed, race, "closed")

    status, body = move(feed, race, "closed", race_datetime="2026-12-04T06:45:00+00:00")

    assert status == 409 and "start time cannot change" in body["detail"]


def test_abandoning_a_race_stops_its_odds_and_its_result(feed, race, horse_ids):
    post(feed, f"/api/races/{race.pk}/odds/", odds_body(horse_ids))

    assert move(feed, race, "abandoned", reason="Weather")[0] == 201
    odds_status, odds = post(feed, f"/api/races/{race.pk}/odds/", odds_body(horse_ids))
    result_status, result = post(feed, f"/api/races/{race.pk}/results/", results_body(dict.fromkeys(horse_ids, 1)))

    assert odds_status == 409 and "abandoned" in odds["detail"]
    assert result_status == 409 and "abandoned" in result["detail"]


@pytest.mark.parametrize("status", ["finished", "live", "", 3, None])
def test_an_unknown_status_is_a_400(feed, race, status):
    code, body = move(feed, race, status)

    assert code == 400 and body["errors"]["status"]


def test_moving_a_status_needs_the_feed_permission(race):
    assert move(APIClient(), race, "open")[0] == 401


# --- The field --------------------------------------------------------------------------------


def test_a_scratched_starter_stays_on_the_card_without_odds_or_placing(feed, client, race, horse_ids):
    status, body = post(feed, starter_url(race, horse_ids[4], "scratch"))

    assert status == 201 and body["change"] == "scratched" and body["starter"]["scratched"] is True
    card = client.get(f"/api/races/{race.pk}/").json()
    assert [s["scratched"] for s in card["starters"]] == [False, False, False, False, True]
    odds_status, odds = post(feed, f"/api/races/{race.pk}/odds/", odds_body(horse_ids))
    assert odds_status == 422 and "scratched" in odds["detail"]
    assert post(feed, f"/api/races/{race.pk}/odds/", odds_body(horse_ids[:4]))[0] == 201
    full_field = results_body({h: n for n, h in enumerate(horse_ids, 1)})
    assert post(feed, f"/api/races/{race.pk}/results/", full_field)[0] == 422
    runners = results_body({h: n for n, h in enumerate(horse_ids[:4], 1)})
    assert post(feed, f"/api/races/{race.pk}/results/", runners)[0] == 201


def test_scratching_twice_is_200_and_a_late_scratching_is_marked_so(feed, race, horse_ids):
    post(feed, f"/api/races/{race.pk}/odds/", odds_body(horse_ids))  # the market opens

    first, _ = post(feed, starter_url(race, horse_ids[0], "scratch"))
    again, body = post(feed, starter_url(race, horse_ids[0], "scratch"))

    assert (first, again) == (201, 200) and body["change"] == "unchanged"
    starter = Starter.objects.get(race=race, horse_id=horse_ids[0])
    assert starter.scratched and starter.scratched_late
    assert StarterChange.objects.filter(starter=starter).count() == 1


def test_a_scratching_is_undone_only_before_the_market_opens(feed, race, horse_ids):
    post(feed, starter_url(race, horse_ids[0], "scratch"))
    assert post(feed, starter_url(race, horse_ids[0], "reinstate"))[0] == 201
    post(feed, starter_url(race, horse_ids[0], "scratch"))
    post(feed, f"/api/races/{race.pk}/odds/", odds_body(horse_ids[1:]))

    status, body = post(feed, starter_url(race, horse_ids[0], "reinstate"))

    assert status == 409 and "market is up" in body["detail"]


def test_a_closed_race_takes_no_scratching_and_a_race_keeps_one_runner(feed, race, horse_ids):
    for horse_id in horse_ids[:4]:
        assert post(feed, starter_url(race, horse_id, "scratch"))[0] == 201

    last_status, last = post(feed, starter_url(race, horse_ids[4], "scratch"))
    move(feed, race, "closed")
    closed_status, closed = post(feed, starter_url(race, horse_ids[3], "reinstate"))

    assert last_status == 409 and "last runner" in last["detail"]
    assert closed_status == 409


def test_a_driver_change_by_name_finds_or_creates_the_driver(feed, race, horse_ids):
    status, body = post(feed, starter_url(race, horse_ids[0], "driver"), {"driver_name": "  Blair   Orange "})
    again, _ = post(feed, starter_url(race, horse_ids[0], "driver"), {"driver_name": "blair orange"})

    assert (status, again) == (201, 200)
    assert body["starter"]["driver_name"] == "Blair Orange"
    change = StarterChange.objects.get(change="driver_changed")
    assert change.driver_after.name == "Blair Orange" and change.driver_before.name.startswith("Test Driver")


@pytest.mark.parametrize(
    "body, code",
    [({}, 400), ({"driver_name": "A", "driver_id": 1}, 400), ({"driver_id": 999999}, 422), ({"driver_name": 7}, 400)],
)
def test_a_driver_change_names_one_driver_that_exists(feed, race, horse_ids, body, code):
    status, answer = post(feed, starter_url(race, horse_ids[0], "driver"), body)

    assert status == code and answer["detail"]
    assert not StarterChange.objects.exists()


def test_a_horse_that_is_not_in_the_race_is_404(feed, race):
    status, body = post(feed, starter_url(race, 987654, "scratch"))

    assert status == 404 and body["detail"]


# --- Results ----------------------------------------------------------------------------------


def test_a_dead_heat_is_accepted_and_read_back_together(feed, client, race, horse_ids):
    placings = {horse_ids[0]: 1, horse_ids[1]: 1, horse_ids[2]: 3, horse_ids[3]: 4, horse_ids[4]: None}

    status, _ = post(feed, f"/api/races/{race.pk}/results/", results_body(placings))

    assert status == 201
    read = client.get(f"/api/races/{race.pk}/results/").json()
    assert read["status"] == "official"
    assert [(r["horse_id"], r["placing"]) for r in read["results"]] == list(placings.items())


def test_an_interim_result_then_a_protest_upheld_makes_other_placings_official(feed, client, race, horse_ids):
    interim = {h: n for n, h in enumerate(horse_ids, 1)}
    upheld = {**interim, horse_ids[0]: 2, horse_ids[1]: 1}

    assert post(feed, f"/api/races/{race.pk}/results/", results_body(interim, official=False))[0] == 201
    interim_read = client.get(f"/api/races/{race.pk}/results/").json()
    assert move(feed, race, "protest", reason="Inquiry into the home turn")[0] == 201
    assert post(feed, f"/api/races/{race.pk}/results/", results_body(upheld))[0] == 201

    assert interim_read["status"] == "interim" and interim_read["results"][0]["horse_id"] == horse_ids[0]
    official = client.get(f"/api/races/{race.pk}/results/").json()
    assert official["status"] == "official" and official["results"][0]["horse_id"] == horse_ids[1]
    assert [kind for _, kind in logged(race)] == [
        "status", "status", "interim",  # closed, interim, the placings
        "status",  # protest
        "status", "result",  # official, the result
    ]  # fmt: skip


def test_a_protest_dismissed_makes_the_interim_placings_official(feed, client, race, horse_ids):
    interim = {h: n for n, h in enumerate(horse_ids, 1)}
    post(feed, f"/api/races/{race.pk}/results/", results_body(interim, official=False))
    move(feed, race, "protest")

    status, _ = move(feed, race, "official", reason="Protest dismissed")

    assert status == 201
    result = client.get(f"/api/races/{race.pk}/results/").json()
    assert result["status"] == "official" and [r["horse_id"] for r in result["results"]] == horse_ids
    card = client.get(f"/api/races/{race.pk}/").json()
    assert [s["placing"] for s in card["starters"]] == [1, 2, 3, 4, 5]


def test_the_stewards_satisfied_the_interim_placings_become_official_as_they_stand(feed, client, race, horse_ids):
    interim = {h: n for n, h in enumerate(horse_ids, 1)}
    post(feed, f"/api/races/{race.pk}/results/", results_body(interim, official=False))
    allowed = client.get(f"/api/races/{race.pk}/status/").json()["allowed"]

    status, body = move(feed, race, "official")

    assert "official" in allowed and status == 201 and body["status"] == "official"
    result = client.get(f"/api/races/{race.pk}/results/").json()
    assert result["status"] == "official" and [r["horse_id"] for r in result["results"]] == horse_ids
    assert [kind for _, kind in logged(race)][-2:] == ["status", "result"]
    assert move(feed, race, "official") == (200, {**body, "change": "unchanged"})


def test_a_closed_race_is_not_made_official_or_interim_without_its_placings(feed, race):
    assert move(feed, race, "closed")[0] == 201
    before = logged(race)

    for wanted in ("interim", "official"):
        status, body = move(feed, race, wanted)
        assert status == 409 and "post them as a result" in body["detail"]
    assert logged(race) == before


def test_the_card_keeps_placings_hidden_until_they_are_official(feed, client, race, horse_ids):
    post(
        feed, f"/api/races/{race.pk}/results/", results_body({h: n for n, h in enumerate(horse_ids, 1)}, official=False)
    )

    card = client.get(f"/api/races/{race.pk}/").json()

    assert card["race"]["status"] == "interim"
    assert {s["placing"] for s in card["starters"]} == {None}


def test_interim_placings_for_an_official_race_are_refused(feed, race, horse_ids):
    placings = {h: n for n, h in enumerate(horse_ids, 1)}
    post(feed, f"/api/races/{race.pk}/results/", results_body(placings))

    status, body = post(feed, f"/api/races/{race.pk}/results/", results_body(placings, official=False))

    assert status == 409 and "official" in body["detail"]


# --- Reading ----------------------------------------------------------------------------------


@pytest.mark.parametrize("status", ["scheduled", "open", "closed", "interim", "protest", "official", "abandoned"])
def test_the_race_list_filters_by_each_status(client, status):
    race = factories.race_create(starter_count=1, status=status)
    factories.race_create(starter_count=1, status="open" if status != "open" else "closed")

    listed = client.get("/api/races/", {"status": status}).json()

    assert [r["id"] for r in listed["results"]] == [race.pk]


@pytest.mark.parametrize("status", ["live", "finished", "OPEN"])
def test_a_status_filter_the_server_does_not_know_is_a_400(client, status):
    response = client.get("/api/races/", {"status": status})

    assert response.status_code == 400 and response.json()["errors"]["status"]


# --- Broadcast --------------------------------------------------------------------------------


@pytest.mark.usefixtures("stop_live_tasks")
async def test_each_write_reaches_a_listening_client_once_in_seq_order(feed, race, horse_ids, settings):
    settings.SIMULATION_ENABLED = False
    client = WebsocketCommunicator(application, f"/ws/races/{race.pk}")
    assert (await client.connect())[0]
    assert (await client.receive_json_from())["type"] == "initial_state"
    later = (race.race_datetime + dt.timedelta(minutes=5)).isoformat()
    writes = [
        (starter_url(race, horse_ids[4], "scratch"), None),
        (starter_url(race, horse_ids[4], "scratch"), None),  # again: nothing
        (f"/api/races/{race.pk}/odds/", odds_body(horse_ids[:4])),
        (starter_url(race, horse_ids[0], "driver"), {"driver_name": "Blair Orange"}),
        (f"/api/races/{race.pk}/status/", {"status": "open", "race_datetime": later}),
        (f"/api/races/{race.pk}/results/", results_body({h: 1 + (n > 1) * n for n, h in enumerate(horse_ids[:4])}, official=False)),
        (f"/api/races/{race.pk}/status/", {"status": "official"}),  # the interim placings stand
        (f"/api/races/{race.pk}/results/", results_body({h: 1 + (n > 1) * n for n, h in enumerate(horse_ids[:4])})),  # again: nothing
    ]  # fmt: skip

    codes = [(await sync_to_async(post)(feed, url, body))[0] for url, body in writes]
    received = []
    while not received or received[-1]["type"] != "result_update":
        received.append(assert_valid(await client.receive_json_from(timeout=5)))

    assert codes == [201, 200, 201, 201, 201, 201, 201, 200]
    assert [(m["type"], m.get("status") or m.get("change")) for m in received] == [
        ("starter_update", "scratched"),
        ("race_status", "open"),
        ("odds_update", None),
        ("starter_update", "driver_changed"),
        ("race_status", "open"),  # the delay
        ("race_status", "closed"),
        ("race_status", "interim"),
        ("interim_result", None),
        ("race_status", "official"),
        ("result_update", None),
    ]
    assert [m["seq"] for m in received] == list(range(1, 11))
    assert received[-1]["results"][:2] == [
        {"horse_id": horse_ids[0], "placing": 1, "finished": True},
        {"horse_id": horse_ids[1], "placing": 1, "finished": True},
    ]  # a dead heat, as posted
    assert await client.receive_nothing(timeout=0.2)
    await client.disconnect()
