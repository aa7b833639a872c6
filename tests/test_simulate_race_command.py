"""`manage.py simulate_race`: one race's market in the foreground, through the channel layer."""

from __future__ import annotations

import random

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from live.market.race_day import plan_seed, race_day_plan
from races.models import OddsSnapshot, Race, RaceUpdate
from races.services import odds_snapshot_record, race_result_record
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

    with pytest.raises(CommandError, match="is official; use --reset"):
        call_command("simulate_race", race.pk)


def test_a_fed_race_needs_reset(race, redis_url):
    horse_ids = list(race.starters.values_list("horse_id", flat=True))
    odds_snapshot_record(race_id=race.pk, odds=[(h, 4.0) for h in horse_ids], source="feed", taken_at=timezone.now())

    with pytest.raises(CommandError, match="fed by a live feed; use --reset"):
        call_command("simulate_race", race.pk)


def updates(output: str) -> list[tuple[str, str]]:
    """The printed updates, (kind, what), without the clock time that starts each line."""
    return [tuple(line.split(None, 2)[1:]) for line in output.splitlines() if line[:2].isdigit()]


def test_it_lives_the_race_day_to_its_official_result_and_prints_each_update(race, redis_url, capsys):
    call_command("simulate_race", race.pk, "--speedup", "1000", "--seed", "5")

    printed = updates(capsys.readouterr().out)
    kinds = [kind for kind, _ in printed]
    assert 6 <= kinds.count("odds_update") <= 12
    assert ("race_status", "open") in printed and ("race_status", "closed") in printed
    assert kinds.index("interim_result") < kinds.index("result_update") == len(kinds) - 1
    assert printed[-1][1].startswith("1 #")
    race.refresh_from_db()
    assert race.status == Race.Status.OFFICIAL
    assert OddsSnapshot.objects.filter(race=race).count() == kinds.count("odds_update")
    assert RaceUpdate.objects.filter(race=race).count() == len(printed)  # each stored update, printed once


def test_a_person_can_force_a_late_scratching_a_dead_heat_and_an_upheld_protest(race, redis_url, capsys):
    call_command(
        "simulate_race", race.pk, "--speedup", "1000", "--scratch", "late", "--dead-heat", "2", "--protest", "upheld"
    )

    printed = updates(capsys.readouterr().out)
    # The day may also have a scratching of its own before the market (its seed is the race's
    # epoch): the one asked for is the late one.
    scratchings = [what for kind, what in printed if kind == "starter_update" and what.startswith("scratched")]
    late = [what for what in scratchings if what.endswith("(late)")]
    assert len(late) == 1, scratchings
    scratched = late[0]
    number = scratched.split()[1]  # "#4"
    after = printed[[what for _, what in printed].index(scratched) + 1 :]
    # A driver change due in the same step may come between; the next odds are renormalised
    # without the scratched runner.
    next_odds = next(what for kind, what in after if kind == "odds_update")
    assert f"{number} " not in next_odds
    assert all(kind == "starter_update" for kind, _ in after[: [k for k, _ in after].index("odds_update")])
    statuses = [what for kind, what in printed if kind == "race_status"]
    assert statuses[-3].startswith("protest (Protest: #")
    assert statuses[-2].startswith("interim (Protest upheld: #") and statuses[-1] == "official"
    first_interim = next(what for kind, what in printed if kind == "interim_result")
    assert printed[-1][1] != first_interim  # the two protagonists swapped
    assert race.starters.filter(placing=2).count() == 2 and not race.starters.filter(placing=3).exists()


def test_a_person_can_force_an_abandonment(race, redis_url, capsys):
    call_command("simulate_race", race.pk, "--speedup", "1000", "--scratch", "early", "--abandon")

    printed = updates(capsys.readouterr().out)
    race.refresh_from_db()
    assert printed[0][0] == "starter_update" and not printed[0][1].endswith("(late)")
    assert printed[-1][0] == "race_status" and printed[-1][1].startswith("abandoned (")
    assert race.status == Race.Status.ABANDONED
    assert "result_update" not in [kind for kind, _ in printed]


def test_a_dead_heat_is_for_a_placing_that_pays(race, redis_url):
    with pytest.raises(CommandError, match="--dead-heat takes a placing that pays: 1, 2, 3"):
        call_command("simulate_race", race.pk, "--dead-heat", "5")


def test_reset_clears_a_finished_race_and_runs_it_again(race, redis_url, capsys):
    finish(race)

    call_command("simulate_race", race.pk, "--speedup", "1000", "--reset")

    assert "Reset race" in capsys.readouterr().out
    race.refresh_from_db()
    assert race.status == Race.Status.OFFICIAL
    assert OddsSnapshot.objects.filter(race=race).exists()


def a_seed_with_a_driver_change(field_size: int) -> int:
    return next(
        seed
        for seed in range(1000)
        if race_day_plan(
            horse_ids=range(field_size),
            market_duration_s=60,
            rng=random.Random(f"{plan_seed(race_id=0, seed=seed, epoch='')}:plan"),
        ).driver_changes
    )


def test_a_seed_makes_the_race_day_reproducible_driver_changes_included(race, redis_url, capsys):
    seed = a_seed_with_a_driver_change(race.starters.count())

    def run() -> list[tuple[str, str]]:
        call_command("simulate_race", race.pk, "--speedup", "1000", "--seed", str(seed), "--reset", "--protest")
        return updates(capsys.readouterr().out)

    first = run()
    assert first == run()
    assert "new driver for" in " ".join(what for _, what in first)


def test_a_speedup_of_zero_is_refused(race, redis_url):
    with pytest.raises(CommandError, match="--speedup must be above 0"):
        call_command("simulate_race", race.pk, "--speedup", "0")
