"""Every stored update of a race is numbered 1, 2, 3, ... in one transaction with the write."""

from __future__ import annotations

import datetime as dt

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from races import events
from races.models import Race, RaceUpdate
from races.selectors import race_card_get, race_updates_after
from races.services import odds_snapshot_record, race_reset, race_result_record
from tests import factories

pytestmark = pytest.mark.django_db

START = dt.datetime(2026, 12, 4, 6, 0, tzinfo=dt.timezone.utc)


@pytest.fixture
def race() -> Race:
    return factories.race_create(starter_count=5)


def horse_ids(race: Race) -> list[int]:
    return list(race.starters.order_by("runner_number").values_list("horse_id", flat=True))


def record_odds(race: Race, n: int) -> None:
    odds_snapshot_record(
        race_id=race.pk, odds=[(h, 3.0 + n) for h in horse_ids(race)], source="feed", taken_at=START + dt.timedelta(seconds=n)
    )


def test_odds_and_results_are_numbered_in_order_without_gaps(race):
    for n in (1, 2, 3):
        record_odds(race, n)
    placings = {h: i for i, h in enumerate(horse_ids(race), 1)}
    race_result_record(race_id=race.pk, placings=placings, declared_at=START, source="feed")
    race_result_record(race_id=race.pk, placings=placings, declared_at=START, source="feed")  # unchanged: no update
    corrected = {**placings, horse_ids(race)[0]: 2, horse_ids(race)[1]: 1}
    race_result_record(race_id=race.pk, placings=corrected, declared_at=START, source="feed", correction=True)

    log = list(RaceUpdate.objects.filter(race=race).values_list("seq", "kind"))
    assert log == [(1, "odds"), (2, "odds"), (3, "odds"), (4, "result"), (5, "result")]
    assert Race.objects.get(pk=race.pk).update_seq == 5
    replay = race_updates_after(race_id=race.pk, after_seq=3, limit=10)
    assert [row["seq"] for row in replay] == [4, 5]
    assert replay[-1]["data"][0] == {"horse_id": horse_ids(race)[1], "placing": 1, "finished": True}


def test_the_announcement_carries_the_seq_and_epoch(race, django_capture_on_commit_callbacks):
    heard = []
    events.odds_recorded.connect(lambda **kw: heard.append(kw), weak=False, dispatch_uid="numbering-test")
    try:
        with django_capture_on_commit_callbacks(execute=True):
            record_odds(race, 1)
    finally:
        events.odds_recorded.disconnect(dispatch_uid="numbering-test")

    assert heard[0]["seq"] == 1
    assert heard[0]["epoch"] == Race.objects.get(pk=race.pk).updates_epoch


def test_a_reset_starts_the_numbers_again_under_a_new_epoch(race):
    record_odds(race, 1)
    before = Race.objects.get(pk=race.pk).updates_epoch

    race_reset(race_id=race.pk)
    record_odds(race, 1)

    after = Race.objects.get(pk=race.pk)
    assert after.updates_epoch != before
    assert list(RaceUpdate.objects.filter(race=race).values_list("seq", flat=True)) == [1]


def test_each_race_gets_its_own_epoch():
    first, second = factories.race_create(starter_count=1), factories.race_create(starter_count=1)

    assert first.updates_epoch != second.updates_epoch


@pytest.mark.parametrize("starter_count", [2, 14])
def test_storing_odds_takes_the_same_queries_whatever_the_field_size(starter_count):
    race = factories.race_create(starter_count=starter_count)
    odds = [(h, 4.0) for h in horse_ids(race)]

    with CaptureQueriesContext(connection) as queries:
        odds_snapshot_record(race_id=race.pk, odds=odds, source="feed", taken_at=START)

    # Lock the race, insert the snapshot, insert the update, update the race (plus the savepoint).
    assert len([q for q in queries.captured_queries if "SAVEPOINT" not in q["sql"]]) == 4


def test_the_race_card_says_where_the_updates_stand(race):
    record_odds(race, 1)
    record_odds(race, 2)

    market = race_card_get(race_id=race.pk)["market"]

    assert market["updates_epoch"] == Race.objects.get(pk=race.pk).updates_epoch
    assert market["latest_update"]["seq"] == 2 and market["latest_update"]["kind"] == "odds"
    assert market["latest_update"]["data"][0]["odds"] == 5.0
