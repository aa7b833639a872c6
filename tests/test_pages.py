"""The board's pages as the server renders them (the browser tests drive them live)."""

from __future__ import annotations

import datetime as dt

import pytest
from django.core.management import call_command
from django.utils import timezone

from races.models import Race
from races.services import race_result_record
from tests import factories
from tests.servers import FIXTURE

pytestmark = pytest.mark.django_db


@pytest.fixture
def race_day():
    call_command("loaddata", str(FIXTURE), verbosity=0)


@pytest.fixture
def today(monkeypatch):
    def set_today(day: dt.date) -> None:
        monkeypatch.setattr("live.views.timezone.localdate", lambda: day)

    return set_today


def test_the_race_day_shows_today_and_upcoming_meetings(client, race_day, today):
    today(dt.date(2026, 12, 4))

    page = client.get("/").content.decode()

    assert "Today and upcoming" in page
    assert "Addington" in page and "Alexandra Park" in page
    assert page.count('href="/races/') == 2 * 19  # number and name link to each race


def test_after_the_last_meeting_it_points_to_the_last_one(client, race_day, today):
    today(dt.date(2027, 1, 10))

    page = client.get("/").content.decode()

    assert "No meetings today or coming up" in page
    assert '?date=2026-12-05' in page


def test_one_day_with_previous_and_next_links(client, race_day):
    page = client.get("/", {"date": "2026-12-04"}).content.decode()

    assert "Friday 4 December 2026" in page and "Addington" in page and "Alexandra Park" not in page
    assert 'rel="next" href="?date=2026-12-05"' in page


def test_a_bad_date_falls_back_to_today_with_a_notice(client, race_day, today):
    today(dt.date(2026, 12, 4))

    page = client.get("/", {"date": "someday"}).content.decode()

    assert "is not a date" in page and "Addington" in page


def test_a_finished_race_shows_its_winner_on_the_race_day(client, race_day):
    horse_ids = list(Race.objects.get(pk=2).starters.values_list("horse_id", flat=True))
    race_result_record(
        race_id=2, placings={h: i for i, h in enumerate(horse_ids, 1)}, declared_at=timezone.now(), source="feed"
    )
    winner = Race.objects.get(pk=2).starters.get(placing=1).horse.name

    page = client.get("/", {"date": "2026-12-04"}).content.decode()

    assert f"won by <strong>{winner}</strong>" in page


def test_the_race_day_costs_the_same_queries_for_any_number_of_races(client, django_assert_num_queries, today):
    today(dt.date(2026, 12, 4))
    factories.race_create(starter_count=3)
    with django_assert_num_queries(4):
        client.get("/")
    for _ in range(8):
        factories.race_create(starter_count=10)

    with django_assert_num_queries(4):
        assert client.get("/").status_code == 200


def test_a_race_page_renders_its_card_and_its_socket_config(client, race_day):
    page = client.get("/races/1/").content.decode()

    assert "Race 1" in page and 'id="board-config"' in page
    assert '"socketPath": "/ws/races/1"' in page
    assert page.count("data-horse-id=") == Race.objects.get(pk=1).starters.count()
    assert 'type="module"' in page and "race-board.js" in page


def test_a_finished_race_page_shows_the_result_without_javascript(client):
    race = factories.race_create(starter_count=3)
    horse_ids = list(race.starters.values_list("horse_id", flat=True))
    race_result_record(
        race_id=race.pk, placings={horse_ids[0]: 2, horse_ids[1]: 1, horse_ids[2]: None},
        declared_at=timezone.now(), source="feed",
    )  # fmt: skip

    page = client.get(f"/races/{race.pk}/").content.decode()

    assert '<li class="winner"><span class="place">1</span> <span class="no">#2</span>' in page
    assert "did not finish" in page


def test_a_race_that_does_not_exist_is_a_404_page(client):
    assert client.get("/races/999999/").status_code == 404


def test_the_race_page_reads_in_a_fixed_number_of_queries(client, django_assert_num_queries):
    race = factories.race_create(starter_count=14)

    with django_assert_num_queries(2):
        assert client.get(f"/races/{race.pk}/").status_code == 200
