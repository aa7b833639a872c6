"""The admin's race-day view: a day's races (today's in the venues' time zone, or ?date=) across
every meeting in start order, each with its meeting, number and name, start, status and the next
action due, linked to the move's confirmation; a date that is none is said so, not a 500; read in
the same queries for one race or twenty."""

from __future__ import annotations

import datetime as dt
import re
from unittest import mock
from zoneinfo import ZoneInfo

import pytest
from django.contrib.auth.models import Permission, User
from django.urls import reverse
from django.utils import timezone
from rest_framework import status as http

from tests import factories

pytestmark = pytest.mark.django_db

URL = reverse("admin:races_race_race_day_list")
VENUES = ZoneInfo("Pacific/Auckland")
DAY = dt.date(2026, 12, 4)


def at(hour: int, minute: int = 0, day: dt.date = DAY) -> dt.datetime:
    return dt.datetime(day.year, day.month, day.day, hour, minute, tzinfo=VENUES)


def rows(response) -> list[tuple[str, str, str, str]]:
    """(start, race, status, next action) of each row, as the office reads them."""
    html = response.content.decode()
    found = re.findall(r'<tr data-race-id="\d+".*?</tr>', html, re.S)
    cells = [re.findall(r"<t[dh][^>]*>(.*?)</t[dh]>", row, re.S) for row in found]
    return [tuple(" ".join(re.sub(r"<[^>]+>", " ", cell).split()) for cell in row) for row in cells]


def test_a_days_races_are_listed_in_start_order_across_meetings(admin_client):
    addington = factories.meeting_create(code="NZ_20261204_ADD", venue="Addington", date=DAY)
    cambridge = factories.meeting_create(code="NZ_20261204_CAM", venue="Cambridge", date=DAY)
    factories.race_create(meeting=addington, race_number=1, name="Garrards Mobile Pace", race_datetime=at(18, 5))
    factories.race_create(meeting=cambridge, race_number=1, name="", race_datetime=at(17, 40))
    factories.race_create(meeting=addington, race_number=2, name="Trot", race_datetime=at(18, 35))
    factories.race_create(meeting=factories.meeting_create(date=DAY + dt.timedelta(days=1)), race_datetime=at(18, 0))

    response = admin_client.get(URL, {"date": "2026-12-04"})

    assert response.status_code == http.HTTP_200_OK
    assert [(start, race) for start, race, *_ in rows(response)] == [
        ("17:40", "Cambridge R1"),
        ("18:05", "Addington R1 Garrards Mobile Pace"),
        ("18:35", "Addington R2 Trot"),
    ]
    assert "Race day: Friday 4 December 2026" in response.content.decode()


def test_each_race_says_the_next_action_due_with_a_link_to_make_it(admin_client):
    now = timezone.now()
    today = timezone.localdate()
    meeting = factories.meeting_create(date=today)
    soon = now + dt.timedelta(minutes=4, seconds=30)
    races = {
        status: factories.race_at_status(status, meeting=meeting, race_datetime=soon + dt.timedelta(minutes=n))
        for n, status in enumerate(["scheduled", "open", "closed", "interim", "protest", "official", "abandoned"])
    }
    overdue = factories.race_at_status("open", meeting=meeting, race_datetime=now - dt.timedelta(minutes=2))

    response = admin_client.get(URL)  # today
    said = {race: due for _, race, _, due in rows(response)}
    html = response.content.decode()

    def label(race):
        return f"{race.meeting.venue} R{race.race_number} {race.name}"

    assert said[label(overdue)] == "Overdue: close"
    assert said[label(races["scheduled"])] == "Open the market"
    assert said[label(races["open"])] == "Close at start (in 5 min)"
    assert said[label(races["closed"])] == "Enter interim placings"
    assert said[label(races["interim"])] == "Declare official (or protest)"
    assert said[label(races["protest"])] == "Decide the protest"
    assert said[label(races["official"])] == said[label(races["abandoned"])] == "–"
    move = lambda race, name: reverse("admin:races_race_race_day", args=[race.pk, name])  # noqa: E731
    page = lambda race: reverse("admin:races_race_change", args=[race.pk])  # noqa: E731
    assert f'href="{move(races["scheduled"], "open")}">Open the market' in html
    assert f'href="{move(overdue, "close")}">Overdue: close' in html
    assert f'href="{move(races["interim"], "official")}">Declare official' in html
    assert f'href="{page(races["closed"])}#starters-group">Enter interim placings' in html  # its placings
    assert f'href="{page(races["protest"])}">Decide the protest' in html
    assert f'<tr data-race-id="{overdue.pk}" data-status="open" class="overdue">' in html


def test_the_link_leads_to_the_moves_confirmation(admin_client):
    race = factories.race_at_status("open", meeting=factories.meeting_create(date=timezone.localdate()))
    link = reverse("admin:races_race_race_day", args=[race.pk, "close"])

    assert link in admin_client.get(URL).content.decode()
    confirmation = admin_client.get(link)

    assert confirmation.status_code == http.HTTP_200_OK and "are you sure?" in confirmation.content.decode()


def test_today_is_the_venues_day_not_utcs(admin_client):
    # 11:30 UTC on 3 December is 00:30 on 4 December in New Zealand: race day is the 4th.
    meeting = factories.meeting_create(date=DAY)
    factories.race_create(meeting=meeting, race_datetime=at(18))
    late_utc = dt.datetime(2026, 12, 3, 11, 30, tzinfo=dt.UTC)

    with mock.patch("django.utils.timezone.now", return_value=late_utc):
        response = admin_client.get(URL)

    assert response.context["day"] == DAY and len(rows(response)) == 1


@pytest.mark.parametrize("value", ["tomorrow", "2026-02-30", "2026-12-4x", "99999-01-01", "\x00", "2026-12-04' OR 1=1"])
def test_a_date_that_is_none_is_said_so_not_a_500(admin_client, value):
    response = admin_client.get(URL, {"date": value})

    assert response.status_code == http.HTTP_400_BAD_REQUEST
    assert "is not a date: give one as YYYY-MM-DD, e.g. 2026-12-04." in response.content.decode()
    assert rows(response) == []


def test_a_day_without_races_says_so_and_links_the_nearest_race_days(admin_client):
    factories.meeting_create(date=dt.date(2026, 12, 1))
    factories.meeting_create(date=dt.date(2026, 12, 9))

    html = admin_client.get(URL, {"date": "2026-12-05"}).content.decode()

    assert "No races on Saturday 5 December 2026." in html
    assert 'href="?date=2026-12-01"' in html and 'href="?date=2026-12-09"' in html


def test_the_same_queries_for_one_race_or_twenty(admin_client, django_assert_num_queries):
    meeting = factories.meeting_create(date=DAY)
    factories.race_at_status("open", meeting=meeting)
    admin_client.get(URL, {"date": "2026-12-04"})  # the session and the user, once
    # The session, the user, the races with their latest odds, their runners, and the race days
    # before and after.
    with django_assert_num_queries(6):
        admin_client.get(URL, {"date": "2026-12-04"})
    statuses = ["scheduled", "open", "closed", "interim", "protest", "official", "abandoned"]
    for n in range(19):  # across several meetings
        factories.race_at_status(statuses[n % 7], meeting=factories.meeting_create(date=DAY) if n % 4 == 0 else meeting)

    with django_assert_num_queries(6):
        response = admin_client.get(URL, {"date": "2026-12-04"})

    assert len(rows(response)) == 20


def test_a_user_who_may_only_view_races_sees_the_day_without_links_to_moves(client):
    viewer = User.objects.create_user("viewer", password="x", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_race"))
    client.force_login(viewer)
    meeting = factories.meeting_create(date=timezone.localdate())
    factories.race_at_status("open", meeting=meeting, race_datetime=timezone.now() - dt.timedelta(minutes=1))

    response = client.get(URL)

    assert response.status_code == http.HTTP_200_OK
    assert rows(response)[0][3] == "Overdue: close"
    assert "race-day/close/" not in response.content.decode()


def test_a_user_without_race_permissions_may_not_see_it(client):
    staff = User.objects.create_user("staff", password="x", is_staff=True)
    client.force_login(staff)

    assert client.get(URL).status_code == http.HTTP_403_FORBIDDEN


def test_the_race_list_and_the_admin_home_link_it(admin_client):
    changelist = admin_client.get(reverse("admin:races_race_changelist")).content.decode()
    home = admin_client.get(reverse("admin:index")).content.decode()

    assert f'href="{URL}">Race day</a>' in changelist
    assert f'href="{URL}"' in home
