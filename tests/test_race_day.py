"""A simulated race's day, planned from a seed (live.market.race_day), and the placings the model
draws and amends: pure, checked over 20,000 seeded plans in well under a second."""

from __future__ import annotations

import random
import statistics

import pytest

from live.market.model import Market, Placing, market_open, placings_after_protest, protest_pair, result_draw
from live.market.race_day import (
    ABANDON_WINDOW,
    LATE_SCRATCHING_WINDOW,
    MIN_RUNNERS,
    Forced,
    RaceDayPlan,
    plan_remaining,
    plan_seed,
    race_day_plan,
)
from races.lifecycle import placings_problems
from tests.test_market import random_field

PLANS = 20_000
DURATION_S = 60.0


def field_of(size: int) -> list[int]:
    return list(range(101, 101 + size))


@pytest.fixture(scope="module")
def plans() -> list[tuple[list[int], RaceDayPlan]]:
    """20,000 race days planned with seed 13, fields of 8 to 14 as on a New Zealand card."""
    rng = random.Random(13)
    planned = []
    for _ in range(PLANS):
        field = field_of(rng.randint(8, 14))
        planned.append((field, race_day_plan(horse_ids=field, market_duration_s=DURATION_S, rng=rng)))
    return planned


def test_about_one_scratching_per_two_races_a_third_of_them_late(plans):
    scratchings = [s for _, plan in plans for s in plan.scratchings]

    assert 0.47 < len(scratchings) / PLANS < 0.53
    assert 0.30 < sum(s.late for s in scratchings) / len(scratchings) < 0.37


def test_scratchings_are_of_starters_and_leave_a_field_worth_racing(plans):
    for field, plan in plans:
        scratched = [s.horse_id for s in plan.scratchings]
        assert len(set(scratched)) == len(scratched) and set(scratched) <= set(field)
        assert len(field) - len(scratched) >= MIN_RUNNERS


def test_late_scratchings_land_while_the_market_runs_and_early_ones_before_it(plans):
    for _, plan in plans:
        for scratching in plan.scratchings:
            if scratching.late:
                low, high = (edge * DURATION_S for edge in LATE_SCRATCHING_WINDOW)
                assert low <= scratching.at_s <= high
            else:
                assert scratching.at_s == 0.0


def test_a_driver_change_now_and_then_never_for_a_scratched_horse(plans):
    changes = [(plan, change) for _, plan in plans for change in plan.driver_changes]

    assert 0.13 < len(changes) / PLANS < 0.17
    for plan, change in changes:
        assert change.horse_id not in {s.horse_id for s in plan.scratchings}
        assert change.driver_name and 0 <= change.at_s <= DURATION_S


def test_a_dead_heat_in_about_one_race_in_a_hundred_for_a_placing_that_pays(plans):
    dead_heats = [plan.dead_heat_at for _, plan in plans if plan.dead_heat_at is not None]

    assert 0.008 < len(dead_heats) / PLANS < 0.012
    assert set(dead_heats) == {1, 2, 3}


def test_a_protest_in_about_three_races_in_a_hundred_a_third_of_them_upheld(plans):
    protests = [plan for _, plan in plans if plan.protest]

    assert 0.026 < len(protests) / PLANS < 0.034
    assert 0.27 < sum(plan.protest_upheld for plan in protests) / len(protests) < 0.40


def test_no_race_is_abandoned_unless_asked(plans):
    assert all(plan.abandon_at_s is None for _, plan in plans)


def test_the_steps_after_the_market_take_seconds_not_minutes(plans):
    # Each simulated delay is divided by SIMULATION_SPEEDUP; at 1x a watcher sees the whole day
    # in about a minute and a half, at 10x the browser tests in about ten seconds.
    longest = max(
        plan.running_s + plan.protest_lodged_s + plan.protest_hearing_s + plan.official_after_s for _, plan in plans
    )
    assert statistics.mean(plan.running_s + plan.official_after_s for _, plan in plans) < 25
    assert longest <= 50


def test_a_seed_plans_the_same_day_and_another_seed_another():
    def plan(seed: str) -> RaceDayPlan:
        return race_day_plan(horse_ids=field_of(12), market_duration_s=DURATION_S, rng=random.Random(seed))

    assert plan("7") == plan("7")
    assert len({plan(str(seed)) for seed in range(50)}) == 50


def test_the_seed_is_the_races_epoch_unless_one_is_given():
    assert plan_seed(race_id=3, seed=None, epoch="a1") != plan_seed(race_id=3, seed=None, epoch="b2")
    assert plan_seed(race_id=3, seed=None, epoch="a1") != plan_seed(race_id=4, seed=None, epoch="a1")
    assert plan_seed(race_id=3, seed=7, epoch="a1") == plan_seed(race_id=4, seed=7, epoch="b2")


@pytest.mark.parametrize(
    "forced",
    [
        Forced(scratching="late"),
        Forced(scratching="early"),
        Forced(scratching="either"),
        Forced(dead_heat=True),
        Forced(dead_heat=True, dead_heat_at=2),
        Forced(protest="upheld"),
        Forced(protest="dismissed"),
        Forced(protest="either"),
        Forced(abandon=True),
    ],
    ids=repr,
)
def test_what_a_person_asks_for_happens_and_nothing_else_changes(forced):
    for seed in range(300):
        chance = race_day_plan(horse_ids=field_of(10), market_duration_s=DURATION_S, rng=random.Random(seed))
        plan = race_day_plan(
            horse_ids=field_of(10), market_duration_s=DURATION_S, rng=random.Random(seed), forced=forced
        )

        if forced.scratching == "either":
            assert plan.scratchings
        elif forced.scratching:
            assert any(s.late == (forced.scratching == "late") for s in plan.scratchings)
        else:
            assert plan.scratchings == chance.scratchings
        if forced.dead_heat:
            assert plan.dead_heat_at == (forced.dead_heat_at or chance.dead_heat_at or plan.dead_heat_at)
            assert plan.dead_heat_at in (1, 2, 3)
        else:
            assert plan.dead_heat_at == chance.dead_heat_at
        assert plan.protest == (forced.protest is not None or chance.protest)
        if forced.protest in ("upheld", "dismissed"):
            assert plan.protest_upheld == (forced.protest == "upheld")
        if forced.abandon:
            low, high = (edge * DURATION_S for edge in ABANDON_WINDOW)
            assert low <= plan.abandon_at_s <= high
        assert plan.driver_changes == chance.driver_changes
        assert (plan.running_s, plan.official_after_s) == (chance.running_s, chance.official_after_s)


def test_forcing_a_protest_upholds_about_a_third():
    upheld = [
        race_day_plan(
            horse_ids=field_of(10),
            market_duration_s=DURATION_S,
            rng=random.Random(seed),
            forced=Forced(protest="either"),
        ).protest_upheld
        for seed in range(3000)
    ]

    assert 0.28 < statistics.mean(upheld) < 0.39


def test_a_field_of_two_cannot_be_forced_to_scratch_one():
    with pytest.raises(ValueError, match="too small"):
        race_day_plan(
            horse_ids=field_of(2), market_duration_s=DURATION_S, rng=random.Random(1), forced=Forced(scratching="late")
        )


# --- Resuming: what is still to come -----------------------------------------------------------


def a_full_plan() -> RaceDayPlan:
    forced = Forced(scratching="late", protest="upheld", dead_heat=True)
    for seed in range(1000):
        plan = race_day_plan(
            horse_ids=field_of(12), market_duration_s=DURATION_S, rng=random.Random(seed), forced=forced
        )
        if plan.driver_changes and any(not s.late for s in plan.scratchings):
            return plan
    raise AssertionError("no seed gave every kind of change")


def test_a_resumed_day_before_the_market_still_has_everything_to_come():
    plan = a_full_plan()

    assert plan_remaining(plan, market_open=False, scratched=set(), drivers_changed=set()) == plan


def test_a_resumed_day_never_scratches_or_changes_a_driver_twice():
    plan = a_full_plan()
    done_scratching, done_driver = plan.scratchings[0].horse_id, plan.driver_changes[0].horse_id

    remaining = plan_remaining(plan, market_open=False, scratched={done_scratching}, drivers_changed={done_driver})

    assert done_scratching not in {s.horse_id for s in remaining.scratchings}
    assert remaining.driver_changes == ()
    assert len(remaining.scratchings) == len(plan.scratchings) - 1


def test_once_the_market_is_up_a_scratching_planned_before_it_is_not_made_late():
    plan = a_full_plan()

    remaining = plan_remaining(plan, market_open=True, scratched=set(), drivers_changed=set())

    assert remaining.scratchings == tuple(s for s in plan.scratchings if s.late)
    assert (remaining.dead_heat_at, remaining.protest, remaining.protest_upheld) == (
        plan.dead_heat_at,
        plan.protest,
        plan.protest_upheld,
    )


# --- Placings: dead heats and protests -----------------------------------------------------------


def test_a_dead_heat_is_a_competition_ranking_and_leaves_the_order_drawn_unchanged():
    starters, start_type = random_field(random.Random(5))
    market = market_open(starters=starters, start_type=start_type, rng=random.Random(5))
    for placing in (1, 2, 3):
        plain = result_draw(market, rng=random.Random(9))
        dead_heat = result_draw(market, rng=random.Random(9), dead_heat_at=placing)

        assert [p.horse_id for p in dead_heat] == [p.horse_id for p in plain]
        finishers = [p.placing for p in dead_heat if p.finished]
        assert finishers[placing - 1] == finishers[placing] == placing
        assert finishers[placing + 1] == placing + 2
        assert placings_problems({p.horse_id: p.placing for p in dead_heat}) == []


def test_a_dead_heat_for_third_in_a_match_race_is_a_dead_heat_for_first():
    market = Market(horse_ids=(1, 2), log_strengths=(0.2, -0.2), overround=1.17)

    results = [result_draw(market, rng=random.Random(seed), dead_heat_at=3) for seed in range(200)]

    both_finished = [r for r in results if all(p.finished for p in r)]
    assert len(both_finished) > 150
    assert all([p.placing for p in r] == [1, 1] for r in both_finished)
    assert all([p.placing for p in r] == [1, None] for r in results if r not in both_finished)


def placings(*pairs: tuple[int, int | None]) -> list[Placing]:
    return [Placing(horse_id=h, placing=p) for h, p in pairs]


def test_the_second_protests_against_the_winner_and_upheld_they_swap():
    interim = placings((11, 1), (12, 2), (13, 3), (14, None))

    protester, against = protest_pair(interim)
    upheld = placings_after_protest(interim, upheld=True)

    assert (protester.horse_id, against.horse_id) == (12, 11)
    assert upheld == placings((12, 1), (11, 2), (13, 3), (14, None))
    assert placings_after_protest(interim, upheld=False) == interim


def test_after_a_dead_heat_for_first_the_third_protests_and_the_ranking_holds():
    interim = placings((11, 1), (12, 1), (13, 3), (14, 4))

    protester, against = protest_pair(interim)
    upheld = placings_after_protest(interim, upheld=True)

    assert (protester.horse_id, against.horse_id) == (13, 12)
    assert {p.horse_id: p.placing for p in upheld} == {11: 1, 13: 1, 12: 3, 14: 4}
    assert placings_problems({p.horse_id: p.placing for p in upheld}) == []


def test_nobody_protests_when_nobody_finished_behind_another():
    assert protest_pair(placings((11, 1), (12, None))) is None
    assert placings_after_protest(placings((11, 1), (12, 1)), upheld=True) == placings((11, 1), (12, 1))
