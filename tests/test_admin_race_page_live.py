"""A race's admin page shows the race as it stands at the top, with its moves in one place: its
status, its latest odds (each runner's number, horse and price, the favourite marked, a scratched
runner as such), what is due next, and the script that keeps it live over /ws/live. Read in a
fixed number of queries, whatever the field."""

from __future__ import annotations

import ast
import datetime as dt
import json
import re
from pathlib import Path

import pytest
from django.contrib.auth.models import Permission, User
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from races import admin as races_admin
from races.admin_race_day import race_live_state_get
from races.models import OddsSnapshot, Race, Source
from races.services import Actor, odds_snapshot_record, starter_scratch
from tests import factories

pytestmark = pytest.mark.django_db

REPO = Path(__file__).resolve().parent.parent


def page_of(client, race: Race):
    return client.get(reverse("admin:races_race_change", args=[race.pk]))


def odds_posted(race: Race, prices: list[float]) -> list[int]:
    """Publish the race's market with these prices in runner order; return the horses in order."""
    horses = list(race.starters.order_by("runner_number").values_list("horse_id", flat=True))
    odds_snapshot_record(
        race_id=race.pk,
        odds=list(zip(horses, prices, strict=True)),
        source=OddsSnapshot.Source.FEED,
        taken_at=dt.datetime(2026, 12, 4, 6, 20, 5, tzinfo=dt.UTC),
    )
    return horses


def odds_rows(html: str) -> list[tuple[str, str, str, str]]:
    """(class, number, horse, odds) of each row of the page's odds board, tags stripped."""
    table = re.search(r'<table id="race-live-odds".*?</table>', html, re.S).group(0)
    rows = re.findall(r'<tr data-horse-id="\d+" class="([^"]*)">(.*?)</tr>', table, re.S)
    text = [[re.sub(r"<[^>]+>", "", cell).strip() for cell in re.findall(r"<t[dh][^>]*>(.*?)</t[dh]>", row, re.S)] for _, row in rows]  # fmt: skip
    return [(cls.strip(), *cells) for (cls, _), cells in zip(rows, text, strict=True)]


def test_an_open_races_page_shows_its_status_odds_and_favourite_at_the_top(admin_client):
    race = factories.race_create(starter_count=4, race_datetime=timezone.now() + dt.timedelta(minutes=4, seconds=30))
    odds_posted(race, [5.5, 2.4, 9.0, 2.4])  # two at the shortest price: the lower number is favourite

    html = page_of(admin_client, race).content.decode()
    names = list(race.starters.order_by("runner_number").values_list("horse__name", flat=True))

    assert html.index('id="race-live"') < html.index('id="race_form"')  # above the form
    assert re.search(r'id="race-live-status" class="race-status" data-status="open">Open<', html)
    assert odds_rows(html) == [
        ("", "1", names[0], "5.50"),
        ("favourite", "2", f"{names[1]} Fav", "2.40"),
        ("", "3", names[2], "9.00"),
        ("", "4", names[3], "2.40"),
    ]
    assert "Latest odds at 19:20:05" in html  # the venue's clock (Pacific/Auckland)
    assert "Next: Close at start (in 4 min)" in html


def test_a_scratched_runner_shows_as_scratched_and_is_never_the_favourite(admin_client):
    race = factories.race_create(starter_count=3)
    horses = odds_posted(race, [1.8, 3.0, 6.5])
    starter_scratch(race_id=race.pk, horse_id=horses[0], at=timezone.now(), actor=Actor(Source.ADMIN))

    rows = odds_rows(page_of(admin_client, race).content.decode())

    assert [(cls, odds) for cls, _, _, odds in rows] == [("scratched", "SCR"), ("favourite", "3.00"), ("", "6.50")]


def test_a_race_before_its_market_has_no_odds_yet(admin_client):
    race = factories.race_create(starter_count=2)

    html = page_of(admin_client, race).content.decode()

    assert "No odds yet" in html
    assert [odds for *_, odds in odds_rows(html)] == ["–", "–"]
    assert 'data-status="scheduled">Scheduled<' in html


def test_an_abandoned_races_odds_are_gone_and_nothing_is_due(admin_client):
    race = factories.race_create(starter_count=2)
    odds_posted(race, [1.5, 2.5])
    admin_client.post(reverse("admin:races_race_race_day", args=[race.pk, "abandon"]), {"post": "yes", "reason": "Fog"})

    html = page_of(admin_client, race).content.decode()

    assert [(cls, odds) for cls, _, _, odds in odds_rows(html)] == [("", "–"), ("", "–")]
    assert "Next:" not in html and 'data-status="abandoned"' in html


def test_the_moves_are_in_the_race_day_box_and_only_there(admin_client):
    race = factories.race_at_status("interim")

    html = page_of(admin_client, race).content.decode()
    box = re.search(r'<section id="race-live".*?</section>', html, re.S).group(0)

    for move in ("protest", "official", "abandon"):
        url = reverse("admin:races_race_race_day", args=[race.pk, move])
        assert html.count(f'href="{url}"') == 1 and url in box
    assert "Next: Declare official (or protest)" in box


def test_a_user_who_may_only_view_races_sees_the_state_without_moves(client):
    viewer = User.objects.create_user("viewer", password="x", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_race"))
    client.force_login(viewer)
    race = factories.race_at_status("open")

    html = page_of(client, race).content.decode()

    assert 'id="race-live"' in html and "race-live-moves" not in html


def test_the_script_is_given_the_race_its_meeting_and_the_live_socket(admin_client):
    race = factories.race_at_status("open")

    html = page_of(admin_client, race).content.decode()
    config = json.loads(
        re.search(r'<script id="race-live-config" type="application/json">(.*?)</script>', html).group(1)
    )

    assert config == {
        "raceId": race.pk,
        "meetingId": race.meeting.code,
        "status": "open",
        "socketPath": "/ws/live",
        "statusLabels": config["statusLabels"],
        "timeZone": "Pacific/Auckland",
    }
    assert config["statusLabels"]["closed"] == "Closed — racing"
    assert '<script type="module" src="/static/races/race-live.js">' in html
    assert "<noscript>" in html  # without the script, the page says the state is as loaded


def test_the_race_page_reads_the_races_state_in_two_queries_whatever_the_field(admin_client, monkeypatch):
    # The page's starters inline costs queries per starter (its autocomplete widgets): the state
    # at the top, read as the page renders, does not.
    counted: list[int] = []

    def counting(**kwargs):
        with CaptureQueriesContext(connection) as queries:
            state = race_live_state_get(**kwargs)
        counted.append(len(queries))
        return state

    monkeypatch.setattr(races_admin, "race_live_state_get", counting)
    small, big = factories.race_create(starter_count=2), factories.race_create(starter_count=14)
    odds_posted(small, [1.5, 2.5])
    odds_posted(big, [2.0 + n for n in range(14)])

    page_of(admin_client, small)
    html = page_of(admin_client, big).content.decode()

    assert counted == [2, 2]
    assert len(odds_rows(html)) == 14


def test_the_race_live_state_is_read_in_two_queries(django_assert_num_queries):
    race = factories.race_create(starter_count=12)
    odds_posted(race, [2.0 + n for n in range(12)])

    with django_assert_num_queries(2):
        state = race_live_state_get(race_id=race.pk, now=timezone.now())

    assert state is not None and len(state.runners) == 12 and state.runners[0].favourite


def test_nothing_in_races_imports_live():
    for source in (REPO / "races").rglob("*.py"):
        tree = ast.parse(source.read_text())
        for node in ast.walk(tree):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            assert not any(name == "live" or name.startswith("live.") for name in names), source
