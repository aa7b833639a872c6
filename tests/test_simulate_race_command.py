"""`manage.py simulate_race`: one race's market in the foreground, through the channel layer."""

from __future__ import annotations

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from races.models import OddsSnapshot, Race
from races.services import race_result_record
from tests import factories

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def race() -> Race:
    return factories.race_create(starter_count=8)


def finish(race: Race) -> None:
    horse_ids = list(race.starters.values_list("horse_id", flat=True))
    race_result_record(
        race_id=race.pk,
        placings={horse_id: number for number, horse_id in enumerate(horse_ids, start=1)},
        declared_at=timezone.now(),
        source="feed",
    )


def test_with_the_in_memory_layer_it_explains_how_to_reach_the_server(race, settings):
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

    with pytest.raises(CommandError, match="in-memory.*Set REDIS_URL"):
        call_command("simulate_race", race.pk)

    assert not OddsSnapshot.objects.exists()


def test_a_race_that_does_not_exist_is_refused(redis_url):
    with pytest.raises(CommandError, match="Race 999999 does not exist"):
        call_command("simulate_race", 999999)


def test_a_finished_race_needs_reset(race, redis_url):
    finish(race)

    with pytest.raises(CommandError, match="is finished; use --reset"):
        call_command("simulate_race", race.pk)


def test_it_runs_the_race_to_its_result_and_prints_each_update(race, redis_url, capsys):
    call_command("simulate_race", race.pk, "--speedup", "1000", "--seed", "5")

    output = capsys.readouterr().out.splitlines()
    odds_lines = [line for line in output if "odds_update" in line]
    assert 6 <= len(odds_lines) <= 12
    assert "result_update  1 #" in output[-1]
    race.refresh_from_db()
    assert race.status == Race.Status.FINISHED
    assert OddsSnapshot.objects.filter(race=race).count() == len(odds_lines)


def test_reset_clears_a_finished_race_and_runs_it_again(race, redis_url, capsys):
    finish(race)

    call_command("simulate_race", race.pk, "--speedup", "1000", "--reset")

    assert "Reset race" in capsys.readouterr().out
    race.refresh_from_db()
    assert race.status == Race.Status.FINISHED
    assert OddsSnapshot.objects.filter(race=race).exists()


def test_a_seed_makes_the_race_reproducible(race, redis_url, capsys):
    def run() -> list[str]:
        call_command("simulate_race", race.pk, "--speedup", "1000", "--seed", "11", "--reset")
        # Drop the clock time that starts each line; keep prices and result.
        return [line.split(" ", 1)[1] for line in capsys.readouterr().out.splitlines() if "_update" in line]

    assert run() == run()


def test_a_speedup_of_zero_is_refused(race, redis_url):
    with pytest.raises(CommandError, match="--speedup must be above 0"):
        call_command("simulate_race", race.pk, "--speedup", "0")
