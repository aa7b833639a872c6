"""The fixture race day is a realistic New Zealand harness card."""

from collections import Counter

import pytest
from django.core.management import call_command

from races.models import Meeting, Race, Starter
from races.selectors import race_card_get
from tests.servers import FIXTURE

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def race_day():
    call_command("loaddata", str(FIXTURE), verbosity=0)


def test_two_meetings_of_eight_to_ten_races_with_eight_to_fourteen_starters():
    assert set(Meeting.objects.values_list("venue", flat=True)) == {"Addington", "Alexandra Park"}
    for meeting in Meeting.objects.all():
        assert 8 <= meeting.races.count() <= 10
    field_sizes = Counter(Starter.objects.values_list("race", flat=True))
    assert len(field_sizes) == Race.objects.count()
    assert all(8 <= size <= 14 for size in field_sizes.values())


def test_both_gaits_and_both_start_types():
    assert set(Race.objects.values_list("gait", flat=True)) == {"pace", "trot"}
    assert set(Race.objects.values_list("start_type", flat=True)) == {"mobile", "standing"}


def test_standing_starts_have_handicaps_of_0_10_20_30_m_and_mobiles_none():
    standing = Starter.objects.filter(race__start_type="standing")
    mobile = Starter.objects.filter(race__start_type="mobile")

    assert set(standing.values_list("handicap_m", flat=True)) == {0, 10, 20, 30}
    assert set(mobile.values_list("handicap_m", flat=True)) == {None}


def test_some_fields_are_null_as_the_spec_allows():
    assert Race.objects.filter(weather__isnull=True).exists()
    assert Race.objects.filter(track_condition__isnull=True).exists()
    assert Starter.objects.filter(driver__isnull=True).exists()
    assert Starter.objects.filter(trainer__isnull=True).exists()


def test_meeting_codes_name_country_date_and_venue():
    for meeting in Meeting.objects.all():
        assert meeting.code == f"NZ_{meeting.date:%Y%m%d}_{meeting.code[-3:]}"


def test_every_race_card_reads_in_two_queries(django_assert_num_queries):
    for race_id in Race.objects.values_list("pk", flat=True):
        with django_assert_num_queries(2):
            card = race_card_get(race_id=race_id)
        numbers = [s["runner_number"] for s in card["starters"]]
        assert numbers == sorted(numbers)


def test_the_fixture_file_is_what_its_generator_writes():
    """Ensure fixtures/race_day.json was not edited by hand (or the generator changed without it)."""
    import importlib.util

    from tests.servers import REPO_DIR

    spec = importlib.util.spec_from_file_location("generate_race_day", REPO_DIR / "fixtures" / "generate_race_day.py")
    generator = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(generator)

    assert generator.render(generator.build()) == FIXTURE.read_text(encoding="utf-8")


def test_loading_the_fixtures_again_over_a_race_that_lived_resets_it_so_its_next_update_is_numbered():
    # `make run` loads the fixture day every time it starts, over whatever the last run stored.
    import datetime as dt

    from races.models import OddsSnapshot, RaceUpdate
    from races.services import odds_snapshot_record

    race = Race.objects.order_by("pk").first()
    odds = [(starter.horse_id, 5.0) for starter in race.starters.all()]
    for _ in range(2):
        odds_snapshot_record(race_id=race.pk, odds=odds, source="feed", taken_at=dt.datetime.now(dt.UTC))
    assert RaceUpdate.objects.filter(race=race).count() >= 2

    call_command("loaddata", FIXTURE, verbosity=0)
    stored = odds_snapshot_record(race_id=race.pk, odds=odds, source="feed", taken_at=dt.datetime.now(dt.UTC))

    race.refresh_from_db()
    assert race.update_seq == RaceUpdate.objects.filter(race=race).count() == 2  # opened, then these odds
    assert list(OddsSnapshot.objects.filter(race=race)) == [stored]
