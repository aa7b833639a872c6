"""The racing domain's rules, held by the database itself."""

import pytest
from django.db import IntegrityError, transaction

from races.models import Horse, Race, Starter
from tests import factories

pytestmark = pytest.mark.django_db


def assert_rejected(create) -> None:
    with pytest.raises(IntegrityError), transaction.atomic():
        create()


def test_a_horse_starts_once_per_race():
    race = factories.race_create(starter_count=1)
    horse = race.starters.get().horse

    assert_rejected(lambda: factories.starter_create(race=race, horse=horse, runner_number=2))


def test_runner_numbers_are_unique_within_a_race_but_not_across_races():
    race = factories.race_create(starter_count=1)
    other = factories.race_create(starter_count=1)

    assert_rejected(lambda: factories.starter_create(race=race, runner_number=1))
    assert other.starters.get().runner_number == 1


def test_race_numbers_are_unique_within_a_meeting():
    race = factories.race_create(starter_count=0)

    assert_rejected(lambda: factories.race_create(meeting=race.meeting, race_number=race.race_number))


@pytest.mark.parametrize("distance_m", [0])
def test_a_race_has_a_positive_distance(distance_m):
    assert_rejected(lambda: factories.race_create(starter_count=0, distance_m=distance_m))


def test_placings_start_at_one():
    race = factories.race_create(starter_count=1)

    assert_rejected(lambda: Starter.objects.filter(race=race).update(placing=0))


def test_a_starter_that_did_not_finish_has_no_placing():
    race = factories.race_create(starter_count=1)

    assert_rejected(lambda: Starter.objects.filter(race=race).update(placing=3, did_not_finish=True))


def test_dead_heats_may_share_a_placing():
    race = factories.race_create(starter_count=2)

    Starter.objects.filter(race=race).update(placing=1)

    assert list(race.starters.values_list("placing", flat=True)) == [1, 1]


def test_handicaps_and_barriers_cannot_be_negative_or_zero():
    # PositiveSmallIntegerField already refuses negatives; the check constraints hold the rule
    # even for writes that bypass the field (raw updates from another client).
    race = factories.race_create(starter_count=1)

    assert_rejected(lambda: Starter.objects.filter(race=race).update(barrier=0))
    Starter.objects.filter(race=race).update(handicap_m=0)  # front line of a standing start


def test_everything_reads_well_as_text():
    race = factories.race_create(starter_count=1, name="Garrards Mobile Pace")
    starter = race.starters.get()

    assert str(race.meeting) == "Addington – Fri 04 Dec 2026"
    assert str(race) == "Addington R1 Garrards Mobile Pace (1980 m)"
    assert str(starter) == f"#1 {starter.horse.name}"
    assert str(Horse(name="Ripper Rita")) == "Ripper Rita"
    assert str(Race.StartType.STANDING.label) == "Standing"
