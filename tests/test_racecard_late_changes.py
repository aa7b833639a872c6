"""Once a race's market is open, an imported card's new driver and left-out runner go through the
race office's own services (recorded, numbered, sent to clients); what the market no longer allows
is refused, and a race that has closed takes no change at all."""

from __future__ import annotations

import datetime as dt

import pytest

from races import events
from races.models import Race, RaceStatusChange, Source, Starter, StarterChange
from races.racecard import services as racecard_services
from races.services import Actor, RaceClosedError, race_status_change, starter_scratch
from tests.racecard import import_rows, race_rows

pytestmark = pytest.mark.django_db

AT = dt.datetime(2026, 12, 4, 5, 0, tzinfo=dt.UTC)


@pytest.fixture
def heard():
    """The updates announced to clients (after their transaction commits)."""
    announced: list[dict] = []
    events.update_logged.connect(lambda **kw: announced.append(kw), weak=False, dispatch_uid="racecard-test")
    yield announced
    events.update_logged.disconnect(dispatch_uid="racecard-test")


def race_at(status: str) -> tuple[Race, list[dict[str, str]]]:
    """Import the fixture day's first race and move it to ``status``; return it and its rows."""
    rows = race_rows()
    import_rows(rows)
    race = Race.objects.get()
    for step in {"open": ["open"], "closed": ["open", "closed"]}[status]:
        race_status_change(race_id=race.pk, status=step, at=AT, actor=Actor(Source.ADMIN))
    return race, rows


def test_a_new_driver_once_the_market_is_open_is_a_recorded_driver_change(heard, django_capture_on_commit_callbacks):
    race, rows = race_at("open")
    rows[0]["driver"] = "Blair Orange"

    with django_capture_on_commit_callbacks(execute=True):
        report = import_rows(rows)

    change = StarterChange.objects.get()
    assert (change.change, change.driver_after.name, change.source) == ("driver_changed", "Blair Orange", "admin")
    assert [(update["kind"], update["data"]["change"]) for update in heard] == [("starter", "driver_changed")]
    assert (report.updated, report.unchanged) == (1, len(rows) - 1)


def test_a_runner_left_out_once_the_market_is_open_is_a_late_scratching(heard, django_capture_on_commit_callbacks):
    race, rows = race_at("open")

    with django_capture_on_commit_callbacks(execute=True):
        report = import_rows(rows[1:])

    scratched = Starter.objects.get(horse__name=rows[0]["horse"])
    assert (scratched.scratched, scratched.scratched_late) == (True, True)
    assert StarterChange.objects.get().change == "scratched"
    assert [(update["kind"], update["data"]["change"]) for update in heard] == [("starter", "scratched")]
    assert report.removed == 1
    # The card without the scratched runner is the race as it stands: again, nothing changes.
    assert import_rows(rows[1:]).summary() == f"0 created, 0 updated, {len(rows) - 1} unchanged, 0 removed, 0 refused"


def test_a_new_start_time_once_the_market_is_open_is_a_recorded_delay(heard, django_capture_on_commit_callbacks):
    race, rows = race_at("open")
    for row in rows:
        row["start_time"] = "2026-12-04T18:20:00+13:00"

    with django_capture_on_commit_callbacks(execute=True):
        import_rows(rows)

    delay = RaceStatusChange.objects.order_by("seq").last()
    assert (delay.status, delay.previous, delay.reason) == ("open", "open", "race card import")
    assert Race.objects.get().race_datetime == dt.datetime(2026, 12, 4, 5, 20, tzinfo=dt.UTC)
    assert [update["kind"] for update in heard] == ["status"]


def test_once_the_market_is_open_a_new_runner_a_new_barrier_or_distance_is_refused():
    race, rows = race_at("open")
    rows[0]["barrier"] = "12"
    rows[1]["horse"] = "Johnny Come Lately"
    for row in rows:
        row["distance_m"] = "3200"

    report = import_rows(rows)

    assert [str(error) for error in report.errors] == [
        "row 2, distance_m: NZ_20261204_ADD R1: distance_m cannot change, its market is open",
        "row 2, barrier: NZ_20261204_ADD R1 " + rows[0]["horse"] + ": barrier cannot change, its market is open",
        "row 3, horse: NZ_20261204_ADD R1: Johnny Come Lately cannot join the field, the race is open",
    ]
    assert Race.objects.get().distance_m == 2600 and not StarterChange.objects.exists()


def test_a_closed_race_takes_the_same_card_but_no_change():
    race, rows = race_at("closed")
    assert import_rows(rows).unchanged == len(rows)
    rows[0]["driver"] = "Blair Orange"

    report = import_rows(rows[:-1])

    assert [str(error) for error in report.errors] == [
        f"row 2, driver: NZ_20261204_ADD R1 {rows[0]['horse']} cannot change, the race is closed",
        f"row 2, horse: NZ_20261204_ADD R1 {rows[-1]['horse']} is not in the file, but the race is closed: its field stands",
    ]
    assert not StarterChange.objects.exists() and not Starter.objects.filter(scratched=True).exists()


def test_before_the_market_opens_a_scratched_runner_back_on_the_card_is_reinstated():
    rows = race_rows()
    import_rows(rows)
    race = Race.objects.get()
    horse = Starter.objects.get(horse__name=rows[0]["horse"]).horse_id
    starter_scratch(race_id=race.pk, horse_id=horse, at=AT, actor=Actor(Source.ADMIN))

    report = import_rows(rows)

    assert not Starter.objects.filter(scratched=True).exists()
    assert list(StarterChange.objects.order_by("seq").values_list("change", flat=True)) == ["scratched", "reinstated"]
    assert report.updated == 1


def test_a_service_refusing_one_change_undoes_the_changes_made_before_it(monkeypatch, heard):
    race, rows = race_at("open")
    driver = rows[1]["driver"]
    rows[1]["driver"] = "Blair Orange"

    def refuse(**kwargs):
        raise RaceClosedError("race 1 is closed: too late to scratch a starter")

    monkeypatch.setattr(racecard_services, "starter_scratch", refuse)
    report = import_rows(rows[1:])  # the driver change is made first, then the scratching refused

    assert [str(error) for error in report.errors] == [
        "file: refused while saving, nothing changed: race 1 is closed: too late to scratch a starter"
    ]
    assert Starter.objects.get(horse__name=rows[1]["horse"]).driver.name == driver
    assert not StarterChange.objects.exists() and heard == []
