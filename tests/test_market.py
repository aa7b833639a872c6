"""The simulated market, statistically, with fixed seeds: it prices and settles like a tote, over
whole race days (scratchings, late ones renormalising the market, dead heats)."""

from __future__ import annotations

import math
import random
import statistics
from collections import defaultdict
from dataclasses import dataclass

import pytest

from live.market.model import (
    MAX_CHANCE,
    MAX_ODDS,
    MIN_ODDS,
    Market,
    Placing,
    StartingPosition,
    market_from_odds,
    market_odds,
    market_open,
    market_step,
    market_without,
    result_draw,
)
from live.market.race_day import RaceDayPlan, Scratching, race_day_plan
from races.lifecycle import placings_problems

RACES = 20_000
DURATION_S = 60.0


def random_field(rng: random.Random) -> tuple[list[StartingPosition], str]:
    size = rng.randint(8, 14)
    start_type = "standing" if rng.random() < 0.35 else "mobile"
    return [
        StartingPosition(
            horse_id=1000 + number,
            barrier=number,
            handicap_m=rng.choice([0, 0, 0, 0, 10, 10, 20, 30]) if start_type == "standing" else None,
        )
        for number in range(1, size + 1)
    ], start_type


@dataclass(frozen=True)
class Renormalised:
    before: Market
    after: Market
    scratched: int


def run_market(
    rng: random.Random, market: Market, late: list[Scratching] = (), renormalised: list[Renormalised] | None = None
) -> list[Market]:
    """Return the market as published at each update of a 60 s market; a late scratching lands
    on the first update after its time once the market is open (as live.market.simulation does),
    and that update is the market renormalised without the horse, then moved."""
    published: list[Market] = []
    late = list(late)
    while (elapsed_s := market.elapsed_s + rng.uniform(5, 10)) <= DURATION_S:
        for scratching in [s for s in late if published and s.at_s <= elapsed_s]:
            before, market = market, market_without(market, {scratching.horse_id})
            late.remove(scratching)
            if renormalised is not None:
                renormalised.append(Renormalised(before, market, scratching.horse_id))
        market = market_step(market, elapsed_s=elapsed_s, duration_s=DURATION_S, rng=rng)
        published.append(market)
    return published


@dataclass(frozen=True)
class SimulatedRace:
    plan: RaceDayPlan
    published: list[Market]
    result: list[Placing]
    renormalised: list[Renormalised]


@pytest.fixture(scope="module")
def simulated_races() -> list[SimulatedRace]:
    """20,000 race days run to their result with seed 2026: each planned (live.market.race_day),
    its early scratchings left out of the market, its late ones renormalising it as it runs, its
    result drawn with the dead heat the plan has, if any."""
    rng = random.Random(2026)
    races = []
    for _ in range(RACES):
        starters, start_type = random_field(rng)
        plan = race_day_plan(horse_ids=[s.horse_id for s in starters], market_duration_s=DURATION_S, rng=rng)
        early = {s.horse_id for s in plan.scratchings if not s.late}
        runners = [s for s in starters if s.horse_id not in early]
        renormalised: list[Renormalised] = []
        published = run_market(
            rng,
            market_open(starters=runners, start_type=start_type, rng=rng),
            [s for s in plan.scratchings if s.late],
            renormalised,
        )
        result = result_draw(published[-1], rng=rng, dead_heat_at=plan.dead_heat_at)
        races.append(SimulatedRace(plan, published, result, renormalised))
    return races


def test_every_published_market_has_a_tote_overround_and_odds_of_at_least_1_01(simulated_races):
    overrounds = []
    for race in simulated_races:
        for market in race.published:
            odds = [price for _, price in market_odds(market)]
            assert all(MIN_ODDS <= price <= MAX_ODDS for price in odds)
            assert all(price == round(price, 2) for price in odds)
            overrounds.append(sum(1 / price for price in odds))

    assert 1.15 <= min(overrounds) and max(overrounds) <= 1.20
    assert 1.17 < statistics.mean(overrounds) < 1.18


def test_winners_win_as_often_as_their_final_odds_say(simulated_races):
    # Implied chance = (1/odds) / sum(1/odds), i.e. with the overround removed. Tolerance per
    # bucket: 4 standard errors of the observed rate, plus 3 % of the chance for the starters
    # that do not finish (a favourite that breaks gait cannot win; its chance passes mostly to
    # the others, so favourites win slightly less often than their odds say). Two horses dead
    # heating for first each win half, as the tote pays them.
    buckets: dict[float, list[tuple[float, float]]] = defaultdict(list)
    edges = [0.0, 0.02, 0.05, 0.10, 0.15, 0.20, 0.30, 0.45, 1.0]
    for race in simulated_races:
        winners = {p.horse_id for p in race.result if p.placing == 1}
        odds = market_odds(race.published[-1])
        total = sum(1 / price for _, price in odds)
        for horse_id, price in odds:
            chance = (1 / price) / total
            low = max(edge for edge in edges if edge <= chance)
            buckets[low].append((chance, (horse_id in winners) / len(winners)))

    assert len(buckets) == len(edges) - 1
    for low, entries in sorted(buckets.items()):
        expected = statistics.mean(chance for chance, _ in entries)
        observed = sum(won for _, won in entries) / len(entries)
        standard_error = math.sqrt(expected * (1 - expected) / len(entries))
        tolerance = 4 * standard_error + 0.03 * expected
        assert abs(observed - expected) <= tolerance, (low, len(entries), observed, expected)


def test_favourites_and_long_shots_emerge(simulated_races):
    favourites = [min(p for _, p in market_odds(race.published[-1])) for race in simulated_races]
    outsiders = [max(p for _, p in market_odds(race.published[-1])) for race in simulated_races]

    assert 2.0 < statistics.median(favourites) < 4.5
    assert statistics.median(outsiders) > 30


def test_about_three_percent_do_not_finish_and_placings_rank_every_runner(simulated_races):
    starters = did_not_finish = dead_heats = 0
    for race in simulated_races:
        placings = [p.placing for p in race.result if p.finished]
        assert placings_problems({p.horse_id: p.placing for p in race.result}) == []
        if race.plan.dead_heat_at is None:
            assert placings == list(range(1, len(placings) + 1))
        else:  # competition ranking: the two share a placing and the next one is skipped
            dead_heats += 1
            assert len(placings) - len(set(placings)) == (len(placings) >= 2)
        assert {p.horse_id for p in race.result} == set(race.published[-1].horse_ids)
        starters += len(race.result)
        did_not_finish += sum(not p.finished for p in race.result)

    assert 0.025 < did_not_finish / starters < 0.035
    assert 0.007 < dead_heats / len(simulated_races) < 0.013


def test_scratched_horses_are_never_priced_and_late_ones_leave_the_market_when_they_go(simulated_races):
    for race in simulated_races[:5000]:
        early = {s.horse_id for s in race.plan.scratchings if not s.late}
        late = {r.scratched for r in race.renormalised}
        assert not early & set(race.published[0].horse_ids)
        assert not late & set(race.published[-1].horse_ids)
        assert late <= {s.horse_id for s in race.plan.scratchings if s.late}


def test_a_late_scratching_renormalises_the_market_keeping_its_overround_and_the_runners_order(simulated_races):
    renormalisations = [r for race in simulated_races for r in race.renormalised]
    assert len(renormalisations) > 2000  # about one race in six has a late scratching
    for r in renormalisations:
        before = dict(zip(r.before.horse_ids, r.before.chances, strict=True))
        after = dict(zip(r.after.horse_ids, r.after.chances, strict=True))
        assert set(after) == set(before) - {r.scratched}  # the scratched horse is gone, nobody else
        assert r.after.overround == r.before.overround and r.after.elapsed_s == r.before.elapsed_s
        assert 1.15 <= sum(1 / price for _, price in market_odds(r.after)) <= 1.20
        by_chance = sorted(after, key=before.get)
        assert by_chance == sorted(after, key=after.get)  # the order of the rest is kept
        shares = {horse_id: before[horse_id] / (1 - before[r.scratched]) for horse_id in after}
        if max(shares.values()) <= MAX_CHANCE:  # each takes its share of the scratched horse's chance
            assert after == pytest.approx(shares, rel=1e-9)
        else:  # unless the favourite would pass 80 %: the field is flattened, as at the open
            assert max(after.values()) <= MAX_CHANCE


def test_a_market_cannot_scratch_every_runner():
    market = market_open(starters=random_field(random.Random(4))[0][:2], start_type="mobile", rng=random.Random(4))

    with pytest.raises(ValueError):
        market_without(market, set(market.horse_ids))


def test_markets_move_early_and_settle_late(simulated_races):
    early_moves, late_moves = [], []
    for race in simulated_races[:3000]:
        if race.renormalised:
            continue  # a scratching moves every price at once
        published = race.published
        moves = [
            statistics.mean(abs(math.log(b) - math.log(a)) for a, b in zip(before.chances, after.chances, strict=False))
            for before, after in zip(published, published[1:], strict=False)
        ]
        early_moves.append(moves[0])
        late_moves.append(moves[-1])

    assert statistics.mean(early_moves) > 2 * statistics.mean(late_moves)


def test_favourites_both_firm_and_drift(simulated_races):
    firmed = drifted = 0
    for race in simulated_races[:3000]:
        if race.renormalised:
            continue  # a late scratching shortens every price left
        published = race.published
        first, last = market_odds(published[0]), market_odds(published[-1])
        favourite = min(range(len(first)), key=lambda i: first[i][1])
        firmed += last[favourite][1] < first[favourite][1]
        drifted += last[favourite][1] > first[favourite][1]

    assert firmed > 500 and drifted > 500


def mean_opening_chance_by(key, start_type: str, rng: random.Random, races: int = 4000) -> dict:
    by_key: dict[int, list[float]] = defaultdict(list)
    for _ in range(races):
        starters, _ = random_field(rng)
        market = market_open(starters=starters, start_type=start_type, rng=rng)
        for starter, chance in zip(starters, market.chances, strict=False):
            by_key[key(starter)].append(chance * len(starters))  # relative to an even share
    return {k: statistics.mean(v) for k, v in by_key.items()}


def test_inside_barriers_beat_wide_ones_and_the_second_row_is_worst_in_mobile_starts():
    chance = mean_opening_chance_by(lambda s: s.barrier, "mobile", random.Random(1))

    assert chance[1] > chance[4] > chance[8] > chance[9]
    assert chance[1] > chance[8] * 1.25


def test_each_10_m_of_handicap_costs_in_standing_starts():
    chance = mean_opening_chance_by(lambda s: s.handicap_m, "standing", random.Random(2))

    assert chance[0] > chance[10] > chance[20] > chance[30]


def test_a_seed_makes_a_race_reproducible():
    def race(seed: int) -> list:
        rng = random.Random(seed)
        starters, start_type = random_field(random.Random(0))
        published = run_market(rng, market_open(starters=starters, start_type=start_type, rng=rng))
        return [market_odds(m) for m in published] + [result_draw(published[-1], rng=rng)]

    assert race(7) == race(7)
    assert race(7) != race(8)


def test_a_market_resumed_from_its_published_odds_prices_the_same():
    rng = random.Random(3)
    starters, start_type = random_field(rng)
    market = market_step(
        market_open(starters=starters, start_type=start_type, rng=rng), elapsed_s=25, duration_s=60, rng=rng
    )

    resumed = market_from_odds(odds=market_odds(market), elapsed_s=25)

    assert resumed.elapsed_s == 25
    for (_, before), (_, after) in zip(market_odds(market), market_odds(resumed), strict=False):
        assert after == pytest.approx(before, rel=0.02, abs=0.02)


def test_a_market_needs_starters():
    with pytest.raises(ValueError):
        market_open(starters=[], start_type="mobile", rng=random.Random(0))
