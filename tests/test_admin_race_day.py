"""The race office runs the race day from the race list and each race's page: every move of a
race's status is confirmed first, made through races.services with the office's user, and refused
per race, with the statuses it allows, when the race's status does not allow it."""

from __future__ import annotations

import datetime as dt

import pytest
from django.contrib.auth.models import Permission, User
from django.urls import reverse
from rest_framework import status as http

from races.models import Race, RaceStatusChange, Source
from races.services import Actor, race_start_delay, starter_scratch
from tests import factories
from tests.test_admin import inline_management

pytestmark = pytest.mark.django_db

CHANGELIST = reverse("admin:races_race_changelist")


def choose(client, move: str, races: list[Race], **data):
    """Choose a move for races on the list: the confirmation page."""
    return client.post(CHANGELIST, {"action": f"race_day_{move}", "_selected_action": [r.pk for r in races], **data})


def confirm(client, move: str, races: list[Race], **data):
    """Choose a move for races on the list and confirm it; follow back to the list."""
    return client.post(
        CHANGELIST,
        {"action": f"race_day_{move}", "_selected_action": [r.pk for r in races], "post": "yes", **data},
        follow=True,
    )


def said(response) -> list[str]:
    return [str(message) for message in response.context["messages"]]


def status_of(race: Race) -> str:
    return Race.objects.values_list("status", flat=True).get(pk=race.pk)


# --- The race list ------------------------------------------------------------------------------


def test_the_race_list_shows_each_status_in_the_offices_words(admin_client):
    for status in ("scheduled", "open", "closed", "interim", "protest", "official", "abandoned"):
        factories.race_at_status(status)

    response = admin_client.get(CHANGELIST)

    page = response.content.decode()
    for label in ("Scheduled", "Open", "Closed — racing", "Interim", "Protest", "Official", "Abandoned"):
        assert f'<td class="field-status_shown">{label}' in page
    status_filter = next(spec for spec in response.context["cl"].filter_specs if spec.title == "status")
    assert [title for _, title in status_filter.lookup_choices] == [
        "Scheduled", "Open", "Closed — racing", "Interim", "Protest", "Official", "Abandoned"
    ]  # fmt: skip


@pytest.mark.parametrize("status", ["scheduled", "open", "closed", "interim", "protest", "official", "abandoned"])
def test_the_race_list_filters_by_status(admin_client, status):
    for each in ("scheduled", "open", "closed", "interim", "protest", "official", "abandoned"):
        factories.race_at_status(each)

    response = admin_client.get(CHANGELIST, {"status": status})

    assert [race.status for race in response.context["cl"].result_list] == [status]


def test_a_status_the_list_does_not_know_is_refused_not_a_server_error(admin_client):
    response = admin_client.get(CHANGELIST, {"status": "finished"})

    assert response.status_code == http.HTTP_302_FOUND and response.url.endswith("?e=1")


def test_the_race_list_shows_a_delay_with_its_reason_and_scratchings(admin_client):
    race = factories.race_create(starter_count=4)
    office = Actor(Source.ADMIN)
    race_start_delay(
        race_id=race.pk, by=dt.timedelta(minutes=10), reason="ambulance", at=race.race_datetime, actor=office
    )
    starter_scratch(race_id=race.pk, horse_id=race.starters.first().horse_id, at=race.race_datetime, actor=office)

    page = admin_client.get(CHANGELIST).content.decode()

    assert '<strong title="ambulance">delayed</strong>' in page
    assert "4 (1 scr)" in page


def test_an_abandoned_race_shows_why_on_the_list(admin_client):
    race = factories.race_create(starter_count=2)
    confirm(admin_client, "abandon", [race], reason="track flooded")

    page = admin_client.get(CHANGELIST).content.decode()

    assert "Abandoned <small>(track flooded)</small>" in page


def test_the_race_list_takes_the_same_queries_for_one_race_or_twelve(admin_client, django_assert_num_queries):
    factories.race_at_status("open")
    admin_client.get(CHANGELIST)  # the session and the user, once
    # The session, the user, the count of all races and of the list (each a plain COUNT), the page
    # of races with their starters, scratchings, delay and reasons as subqueries, the date
    # hierarchy's first and last start and its days, and the venues to filter by.
    with django_assert_num_queries(8):
        admin_client.get(CHANGELIST)
    for status in ("scheduled", "closed", "interim", "protest", "official", "abandoned") * 2:
        race = factories.race_at_status(status, starter_count=6)
        race_start_delay(race_id=race.pk, by=dt.timedelta(minutes=5), reason="late", at=race.race_datetime,
                         actor=Actor(Source.ADMIN)) if status == "scheduled" else None  # fmt: skip

    with django_assert_num_queries(8):
        response = admin_client.get(CHANGELIST)

    assert response.context["cl"].result_count == 13


# --- Moves from the list, confirmed -------------------------------------------------------------


@pytest.mark.parametrize("move", ["open", "close", "protest", "official", "abandon", "delay", "reset"])
def test_each_move_asks_first_and_changes_nothing_until_confirmed(admin_client, move):
    race = factories.race_at_status("interim" if move in ("protest", "official") else "scheduled")
    before = (race.status, race.race_datetime, race.update_seq)

    response = choose(admin_client, move, [race])

    assert response.status_code == http.HTTP_200_OK
    assert response.templates[0].name == "admin/races/race_day_confirmation.html"
    page = response.content.decode()
    assert "csrfmiddlewaretoken" in page and str(race) in page
    assert f'name="_selected_action" value="{race.pk}"' in page and 'name="post" value="yes"' in page
    stored = Race.objects.get(pk=race.pk)
    assert (stored.status, stored.race_datetime, stored.update_seq) == before


def test_opening_then_closing_moves_the_race_each_move_recorded_with_the_office_user(admin_client):
    race = factories.race_create(starter_count=3)

    opened = confirm(admin_client, "open", [race])
    closed = confirm(admin_client, "close", [race])

    assert said(opened) == [f"Market opened: {race}."] and said(closed) == [f"Closed — racing: {race}."]
    moves = RaceStatusChange.objects.filter(race=race).order_by("seq")
    assert [(m.previous, m.status, m.source, m.user.username) for m in moves] == [
        ("scheduled", "open", "admin", "admin"),
        ("open", "closed", "admin", "admin"),
    ]


def test_a_protest_then_its_dismissal_make_the_interim_placings_official_with_reasons(admin_client):
    race = factories.race_at_status("interim")

    confirm(admin_client, "protest", [race], reason="No. 4 against No. 1: interference")
    response = confirm(admin_client, "official", [race], reason="protest dismissed")

    assert said(response) == [f"Declared official: {race}."]
    race.refresh_from_db()
    assert race.status == "official" and race.result_declared_at is not None
    assert list(RaceStatusChange.objects.filter(race=race).order_by("seq").values_list("status", "reason"))[-2:] == [
        ("protest", "No. 4 against No. 1: interference"),
        ("official", "protest dismissed"),
    ]


def test_an_abandonment_needs_a_reason(admin_client):
    race = factories.race_at_status("open")

    response = choose(admin_client, "abandon", [race], post="yes", reason="   ")

    assert response.status_code == http.HTTP_200_OK
    assert "This field is required." in response.content.decode()
    assert status_of(race) == "open"


def test_a_move_refused_for_one_race_names_what_it_allows_and_the_others_still_move(admin_client):
    scheduled, opened, finished = (factories.race_at_status(s) for s in ("scheduled", "open", "official"))
    closed = factories.race_at_status("closed")

    response = confirm(admin_client, "open", [scheduled, opened, finished, closed])

    assert [status_of(race) for race in (scheduled, opened, finished, closed)] == ["open", "open", "official", "closed"]
    assert said(response) == [
        f"{finished} not changed: it is Official, and its day is over: its status can change no more.",
        f"{closed} not changed: it is Closed — racing, and can only become Interim, Official or Abandoned.",
        f"Market opened: {scheduled}.",
        f"Nothing to change for {opened}: already so.",
    ]


def test_the_confirmation_page_says_beforehand_which_races_will_be_refused_and_why(admin_client):
    opened, interim = factories.race_at_status("open"), factories.race_at_status("interim")

    page = choose(admin_client, "protest", [opened, interim]).content.decode()

    assert "Refused:</strong> it is Open, and can only become Closed — racing or Abandoned" in page
    assert "becomes Protest" in page


def test_a_selection_of_races_that_all_refuse_offers_nothing_to_confirm(admin_client):
    race = factories.race_at_status("official")

    page = choose(admin_client, "close", [race]).content.decode()

    assert 'name="post"' not in page and "Nothing here can be changed so" in page


def test_declaring_a_closed_race_official_asks_for_its_placings(admin_client):
    race = factories.race_at_status("closed")

    response = confirm(admin_client, "official", [race])

    assert status_of(race) == "closed"
    assert said(response) == [
        f"{race} not changed: race {race.pk} is closed: its placings are not in yet; enter them as its result."
    ]


# --- Delays -------------------------------------------------------------------------------------


def test_several_races_are_put_back_by_minutes(admin_client):
    first, second = factories.race_at_status("scheduled"), factories.race_at_status("open")

    response = confirm(admin_client, "delay", [first, second], minutes="15", reason="power cut")

    for race in (first, second):
        stored = Race.objects.get(pk=race.pk)
        assert (stored.status, stored.race_datetime) == (race.status, race.race_datetime + dt.timedelta(minutes=15))
    assert said(response) == [f"Start moved: {first}; {second}."]


def test_one_race_gets_a_new_start_time_in_the_venues_time(admin_client):
    race = factories.race_at_status("open")  # starts 19:30 in Addington (NZDT)

    confirm(admin_client, "delay", [race], race_datetime_0="2026-12-04", race_datetime_1="19:52", reason="false start")

    assert Race.objects.get(pk=race.pk).race_datetime == dt.datetime(2026, 12, 4, 6, 52, tzinfo=dt.UTC)


def test_a_new_start_time_is_for_one_race_at_a_time(admin_client):
    races = [factories.race_at_status("scheduled") for _ in range(2)]

    response = choose(admin_client, "delay", races, post="yes", race_datetime_0="2026-12-04", race_datetime_1="19:52",
                      reason="x")  # fmt: skip

    assert "A new start time is for one race at a time" in response.content.decode()
    assert all(Race.objects.get(pk=r.pk).race_datetime == r.race_datetime for r in races)


@pytest.mark.parametrize(
    "data, problem",
    [
        ({"race_datetime_0": "0001-01-01", "race_datetime_1": "00:00"}, "moves at most 7 days"),
        ({"race_datetime_0": "9999-12-31", "race_datetime_1": "23:59"}, "moves at most 7 days"),
        ({"race_datetime_0": "2026-12-20", "race_datetime_1": "19:30"}, "moves at most 7 days"),
    ],
)
def test_a_start_moved_off_the_week_or_the_calendar_is_refused_with_a_message(admin_client, data, problem):
    race = factories.race_at_status("open")

    response = confirm(admin_client, "delay", [race], reason="x", **data)

    assert response.status_code == http.HTTP_200_OK
    assert problem in " ".join(said(response))
    assert Race.objects.get(pk=race.pk).race_datetime == race.race_datetime


@pytest.mark.parametrize(
    "data, problem",
    [
        ({"race_datetime_0": "2026-02-30", "race_datetime_1": "19:30"}, "Enter a valid date."),
        ({"race_datetime_0": "2026-09-27", "race_datetime_1": "02:30"}, "couldn’t be interpreted in time zone"),
        ({"minutes": "0"}, "greater than or equal to 1"),
        ({"minutes": "-5"}, "greater than or equal to 1"),
        ({"minutes": "99999999999999999999"}, "less than or equal to 10080"),
        ({"minutes": "ten"}, "Enter a whole number."),
        ({}, "Give the new start time or how many minutes"),
        ({"minutes": "5", "race_datetime_0": "2026-12-04", "race_datetime_1": "19:52"}, "one of them"),
    ],
)
def test_a_new_start_that_is_no_time_is_refused_on_the_form(admin_client, data, problem):
    race = factories.race_at_status("open")

    response = choose(admin_client, "delay", [race], post="yes", reason="x", **data)

    assert response.status_code == http.HTTP_200_OK
    assert problem in response.content.decode()
    assert Race.objects.get(pk=race.pk).race_datetime == race.race_datetime


def test_a_race_already_racing_keeps_its_start(admin_client):
    race = factories.race_at_status("closed")

    response = confirm(admin_client, "delay", [race], minutes="5", reason="x")

    assert said(response) == [f"{race} not changed: race {race.pk} is closed: its start time cannot change."]


# --- Hostile selections -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "selected", [["abc"], ["1.5"], ["-1"], ["0"], ["99999999999999999999"], ["9223372036854775808"]]
)
def test_a_selection_that_names_no_id_is_refused_with_a_message(admin_client, selected):
    race = factories.race_create(starter_count=2)

    response = admin_client.post(
        CHANGELIST, {"action": "race_day_close", "_selected_action": [race.pk, *selected], "post": "yes"}, follow=True
    )

    assert response.status_code == http.HTTP_200_OK
    assert said(response) == [f"“{selected[0]}” is not one of the list's ids: nothing was changed."]
    assert status_of(race) == "scheduled"


def test_a_selection_of_races_that_no_longer_exist_changes_nothing(admin_client):
    response = admin_client.post(
        CHANGELIST, {"action": "race_day_close", "_selected_action": ["999999"], "post": "yes"}, follow=True
    )

    assert said(response) == ["None of the chosen ids is in the list: nothing was changed."]


# --- A race's own page --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "status, offered",
    [
        ("scheduled", ["Open market", "Close: they're racing", "Abandon", "Delay start"]),
        ("open", ["Close: they're racing", "Abandon", "Delay start"]),
        ("closed", ["Abandon"]),
        ("interim", ["Protest", "Declare official", "Abandon"]),
        ("protest", ["Declare official", "Abandon"]),
        ("official", []),
    ],
)
def test_a_races_page_offers_the_moves_its_status_allows(admin_client, status, offered):
    race = factories.race_at_status(status)

    response = admin_client.get(reverse("admin:races_race_change", args=[race.pk]))

    assert [move["label"] for move in response.context["race_day_moves"]] == offered


def test_a_move_from_a_races_page_is_confirmed_then_back_to_the_race(admin_client):
    race = factories.race_at_status("open")
    url = reverse("admin:races_race_race_day", args=[race.pk, "close"])

    asked = admin_client.get(url)
    resubmitted = admin_client.post(url, {})  # not the confirmation: asks again
    done = admin_client.post(url, {"post": "yes"})

    assert asked.status_code == resubmitted.status_code == http.HTTP_200_OK
    assert 'name="_selected_action"' not in asked.content.decode()
    assert done.status_code == http.HTTP_302_FOUND and done.url == reverse("admin:races_race_change", args=[race.pk])
    assert status_of(race) == "closed"


@pytest.mark.parametrize("object_id", ["abc", "999999", "99999999999999999999"])
def test_a_races_page_move_for_no_race_redirects_with_a_message(admin_client, object_id):
    response = admin_client.post(f"/admin/races/race/{object_id}/race-day/close/", {"post": "yes"}, follow=True)

    assert response.status_code == http.HTTP_200_OK
    assert said(response) == [f"There is no race “{object_id}”."]


def test_a_move_the_office_does_not_have_is_not_found(admin_client):
    race = factories.race_create(starter_count=2)

    response = admin_client.post(f"/admin/races/race/{race.pk}/race-day/finish/", {"post": "yes"})

    assert response.status_code == http.HTTP_404_NOT_FOUND


def test_a_user_who_may_only_view_races_gets_no_moves(client):
    viewer = User.objects.create_user("viewer", password="x", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_race"))
    client.force_login(viewer)
    race = factories.race_create(starter_count=2)

    listed = client.get(CHANGELIST)
    page = client.get(reverse("admin:races_race_change", args=[race.pk]))
    forced = client.post(reverse("admin:races_race_race_day", args=[race.pk, "close"]), {"post": "yes"})

    assert not any(name.startswith("race_day_") for name, _ in listed.context["action_form"].fields["action"].choices)
    assert page.context.get("race_day_moves") is None
    assert forced.status_code == http.HTTP_403_FORBIDDEN
    assert status_of(race) == "scheduled"


# --- A meeting's page ---------------------------------------------------------------------------


def test_a_meeting_page_edits_a_race_but_moves_its_start_only_before_the_market_opens(admin_client):
    race = factories.race_at_status("open")
    meeting = race.meeting
    data = {
        "code": meeting.code,
        "venue": meeting.venue,
        "date": meeting.date.isoformat(),
        **inline_management("races", 1, 1),
        "races-0-id": str(race.pk),
        "races-0-meeting": str(meeting.pk),
        "races-0-race_number": "1",
        "races-0-name": "Renamed Pace",
        "races-0-distance_m": "1980",
        "races-0-race_datetime_0": "2026-12-05",
        "races-0-race_datetime_1": "19:30:00",
    }

    response = admin_client.post(reverse("admin:races_meeting_change", args=[meeting.pk]), data)

    assert response.status_code == http.HTTP_302_FOUND
    stored = Race.objects.get(pk=race.pk)
    assert (stored.name, stored.race_datetime) == ("Renamed Pace", race.race_datetime)
    assert (stored.status, stored.update_seq) == ("open", race.update_seq)
