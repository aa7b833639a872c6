"""The race card import: the fixture day's card into an empty database gives the fixture day; the
same file again changes nothing; an edited file changes what it edits, all or nothing."""

from __future__ import annotations

import datetime as dt

import pytest
from django.core.management import call_command

from races.models import Driver, Horse, Meeting, Race, Starter, Trainer
from races.racecard.formats import dataset_open
from races.racecard.services import racecard_import
from tests.racecard import EXAMPLE, OFFICE, example_rows, import_rows, race_rows
from tests.servers import FIXTURE

pytestmark = pytest.mark.django_db


def race_day() -> dict[str, object]:
    """Return the race day as names and values, ids left out, to compare two databases by."""
    return {
        "meetings": sorted(Meeting.objects.values_list("code", "venue", "date")),
        "races": sorted(
            Race.objects.values_list(
                "meeting__code",
                "race_number",
                "name",
                "distance_m",
                "gait",
                "start_type",
                "race_datetime",
                "track_condition",
                "weather",
            )
        ),  # fmt: skip
        "starters": sorted(
            Starter.objects.values_list(
                "race__meeting__code",
                "race__race_number",
                "runner_number",
                "barrier",
                "handicap_m",
                "horse__name",
                "driver__name",
                "trainer__name",
            ),
            key=str,
        ),  # fmt: skip
        "horses": sorted(Horse.objects.values_list("name", flat=True)),
        "drivers": sorted(Driver.objects.values_list("name", flat=True)),
        "trainers": sorted(Trainer.objects.values_list("name", flat=True)),
    }


def test_the_example_card_into_an_empty_database_gives_the_fixture_day():
    report = racecard_import(dataset=dataset_open(EXAMPLE), actor=OFFICE, dry_run=False)
    imported = race_day()
    Meeting.objects.all().delete()
    Horse.objects.all().delete(), Driver.objects.all().delete(), Trainer.objects.all().delete()
    call_command("loaddata", str(FIXTURE), verbosity=0)

    assert report.summary() == "203 created, 0 updated, 0 unchanged, 0 removed, 0 refused"
    assert imported == race_day()
    assert (len(imported["meetings"]), len(imported["races"]), len(imported["starters"])) == (2, 19, 203)


def test_the_same_file_twice_changes_nothing_the_second_time():
    import_rows(example_rows())
    before = race_day()

    report = import_rows(example_rows())

    assert report.summary() == "0 created, 0 updated, 203 unchanged, 0 removed, 0 refused"
    assert report.changes == []
    assert race_day() == before


def test_a_dry_run_says_what_would_change_and_saves_nothing():
    report = import_rows(example_rows(), dry_run=True)

    assert report.summary() == "203 created, 0 updated, 0 unchanged, 0 removed, 0 refused (a dry run: nothing saved)"
    assert f"NZ_20261204_ADD R1: new race, {len(race_rows())} starters" in report.changes
    assert not Meeting.objects.exists() and not Horse.objects.exists()


def test_an_edited_file_updates_what_changed_and_nothing_else():
    rows = example_rows()
    import_rows(rows)
    first_race = [r for r in rows if r["meeting_code"] == "NZ_20261204_ADD" and r["race_number"] == "1"]
    for row in first_race:
        row["distance_m"] = "2700"
    first_race[0]["driver"] = "Blair Orange"
    first_race[1]["barrier"], first_race[2]["barrier"] = first_race[2]["barrier"], first_race[1]["barrier"]
    first_race[3]["runner_number"], first_race[4]["runner_number"] = (
        first_race[4]["runner_number"], first_race[3]["runner_number"],
    )  # fmt: skip

    report = import_rows(rows)

    assert (
        report.summary()
        == f"0 created, {len(first_race)} updated, {203 - len(first_race)} unchanged, 0 removed, 0 refused"
    )
    race = Race.objects.get(meeting__code="NZ_20261204_ADD", race_number=1)
    assert race.distance_m == 2700
    assert race.starters.get(horse__name=first_race[0]["horse"]).driver.name == "Blair Orange"
    assert race.starters.get(horse__name=first_race[3]["horse"]).runner_number == int(first_race[3]["runner_number"])
    assert "NZ_20261204_ADD R1: distance_m 2600 → 2700" in report.changes


def test_horses_drivers_and_trainers_are_matched_by_name_trimmed_and_case_ignored():
    rows = race_rows()
    import_rows(rows)
    counts = (Horse.objects.count(), Driver.objects.count(), Trainer.objects.count())
    for row in rows:
        row["horse"] = f"  {row['horse'].upper()} "
        row["driver"] = row["driver"].lower()
        row["trainer"] = f" {row['trainer']}"

    report = import_rows(rows)

    assert (report.created, report.updated, report.unchanged) == (0, 0, len(rows))
    assert (Horse.objects.count(), Driver.objects.count(), Trainer.objects.count()) == counts


def test_new_horses_drivers_and_trainers_are_created_once_each():
    rows = race_rows()
    rows[0]["driver"] = rows[1]["driver"] = "New Driver"
    rows[1]["driver"] = "NEW DRIVER "
    rows[0]["horse"] = "Brand New Horse"

    import_rows(rows)

    assert list(Driver.objects.filter(name__iexact="new driver").values_list("name", flat=True)) == ["New Driver"]
    assert Starter.objects.filter(horse__name="Brand New Horse", driver__name="New Driver").count() == 1
    assert Starter.objects.filter(driver__name="New Driver").count() == 2


def test_before_the_market_opens_a_runner_left_out_leaves_the_field():
    rows = race_rows()
    import_rows(rows)

    report = import_rows(rows[:-1])

    assert report.removed == 1
    assert not Starter.objects.filter(horse__name=rows[-1]["horse"]).exists()


def test_a_start_time_is_read_with_its_offset_or_as_the_venues_time_without_one():
    rows = race_rows()
    for row in rows:
        row["start_time"] = "2026-12-04T19:00"  # no offset: Pacific/Auckland, +13:00 in December
    import_rows(rows)

    assert Race.objects.get().race_datetime == dt.datetime(2026, 12, 4, 6, 0, tzinfo=dt.UTC)


def test_a_file_with_one_bad_row_changes_nothing():
    rows = example_rows()
    import_rows(rows)
    before = race_day()
    rows[0]["driver"] = "Somebody Else"
    rows[-1]["distance_m"] = "far"

    report = import_rows(rows)

    assert report.refused == 1 and report.changes == []
    assert (
        report.summary()
        == "0 created, 0 updated, 0 unchanged, 0 removed, 1 refused: the file is refused, nothing changed"
    )
    assert race_day() == before
