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

START = dt.datetime(2026, 12, 4, 6, 0, tzinfo=dt.UTC)


@pytest.fixture
def race() -> Race:
    return factories.race_create(starter_count=5)


def horse_ids(race: Race) -> list[int]:
    return list(race.starters.order_by("runner_number").values_list("horse_id", flat=True))


def record_odds(race: Race, n: int) -> None:
    odds_snapshot_record(
        race_id=race.pk,
        odds=[(h, 3.0 + n) for h in horse_ids(race)],
        source="feed",
        taken_at=START + dt.timedelta(seconds=n),
    )


def test_odds_status_changes_and_results_are_numbered_in_order_without_gaps(race):
    for n in (1, 2, 3):
        record_odds(race, n)
    placings = {h: i for i, h in enumerate(horse_ids(race), 1)}
    race_result_record(race_id=race.pk, placings=placings, declared_at=START, source="feed")
    race_result_record(race_id=race.pk, placings=placings, declared_at=START, source="feed")  # unchanged: no update
    corrected = {**placings, horse_ids(race)[0]: 2, horse_ids(race)[1]: 1}
    race_result_record(race_id=race.pk, placings=corrected, declared_at=START, source="feed", correction=True)

    log = list(RaceUpdate.objects.filter(race=race).values_list("seq", "kind"))
    # The first odds open the market; the result closes the race and makes it official.
    assert log == [
        (1, "status"), (2, "odds"), (3, "odds"), (4, "odds"),
        (5, "status"), (6, "status"), (7, "result"), (8, "result"),
    ]  # fmt: skip
    assert Race.objects.get(pk=race.pk).update_seq == 8
    replay = race_updates_after(race_id=race.pk, after_seq=6, limit=10)
    assert [row["seq"] for row in replay] == [7, 8]
    assert replay[-1]["data"][0] == {"horse_id": horse_ids(race)[1], "placing": 1, "finished": True}


def test_the_announcement_carries_the_seq_and_epoch(race, django_capture_on_commit_callbacks):
    heard = []
    events.update_logged.connect(lambda **kw: heard.append(kw), weak=False, dispatch_uid="numbering-test")
    try:
        with django_capture_on_commit_callbacks(execute=True):
            record_odds(race, 1)
    finally:
        events.update_logged.disconnect(dispatch_uid="numbering-test")

    assert [(h["seq"], h["kind"]) for h in heard] == [(1, "status"), (2, "odds")]
    assert heard[0]["data"]["status"] == "open" and heard[0]["data"]["previous"] == "scheduled"
    assert {h["epoch"] for h in heard} == {Race.objects.get(pk=race.pk).updates_epoch}


def test_a_reset_starts_the_numbers_again_under_a_new_epoch(race):
    record_odds(race, 1)
    before = Race.objects.get(pk=race.pk).updates_epoch

    race_reset(race_id=race.pk)
    record_odds(race, 1)

    after = Race.objects.get(pk=race.pk)
    assert after.updates_epoch != before
    assert after.status == Race.Status.OPEN  # scheduled again by the reset, opened by the odds
    assert list(RaceUpdate.objects.filter(race=race).values_list("seq", "kind")) == [(1, "status"), (2, "odds")]


def test_each_race_gets_its_own_epoch():
    first, second = factories.race_create(starter_count=1), factories.race_create(starter_count=1)

    assert first.updates_epoch != second.updates_epoch


def queries_to_store_odds(race: Race) -> int:
    odds = [(h, 4.0) for h in horse_ids(race)]
    with CaptureQueriesContext(connection) as queries:
        odds_snapshot_record(race_id=race.pk, odds=odds, source="feed", taken_at=START)
    return len([q for q in queries.captured_queries if "SAVEPOINT" not in q["sql"]])


@pytest.mark.parametrize("starter_count", [2, 14])
def test_storing_odds_takes_the_same_queries_whatever_the_field_size(starter_count):
    race = factories.race_create(starter_count=starter_count, status=Race.Status.OPEN, fed=True)

    # Lock the race, read its scratchings, insert the snapshot and the update, number it.
    assert queries_to_store_odds(race) == 5


@pytest.mark.parametrize("starter_count", [2, 14])
def test_opening_the_market_takes_the_same_queries_whatever_the_field_size(starter_count):
    race = factories.race_create(starter_count=starter_count)

    # As above, plus the status update (logged, numbered, in the history, on the race) and
    # marking the race fed.
    assert queries_to_store_odds(race) == 10


def test_the_race_card_says_where_the_updates_stand(race):
    record_odds(race, 1)
    record_odds(race, 2)

    market = race_card_get(race_id=race.pk)["market"]

    assert market["updates_epoch"] == Race.objects.get(pk=race.pk).updates_epoch
    assert market["update_seq"] == 3  # the market opening, then two odds
    assert market["latest_odds"]["seq"] == 3 and market["latest_odds"]["kind"] == "odds"
    assert market["latest_odds"]["data"][0]["odds"] == 5.0
    assert market["latest_result"] is None
