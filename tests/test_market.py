"""The simulated market, statistically, with fixed seeds: it prices and settles like a tote."""

from __future__ import annotations

import math
import random
import statistics
from collections import defaultdict

import pytest

from live.market import (
    MAX_ODDS,
    MIN_ODDS,
    Market,
    StartingPosition,
    market_from_odds,
    market_odds,
    market_open,
    market_step,
    result_draw,
)

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


def run_market(rng: random.Random, market: Market) -> list[Market]:
    """Return the market as published at each update of a 60 s market."""
    published = []
    while (elapsed_s := market.elapsed_s + rng.uniform(5, 10)) <= DURATION_S:
        market = market_step(market, elapsed_s=elapsed_s, duration_s=DURATION_S, rng=rng)
        published.append(market)
    return published


@pytest.fixture(scope="module")
def simulated_races():
    """20,000 races run to their result with seed 2026: (published markets, result) each."""
    rng = random.Random(2026)
    races = []
    for _ in range(RACES):
        starters, start_type = random_field(rng)
        published = run_market(rng, market_open(starters=starters, start_type=start_type, rng=rng))
        races.append((published, result_draw(published[-1], rng=rng)))
    return races


def test_every_published_market_has_a_tote_overround_and_odds_of_at_least_1_01(simulated_races):
    overrounds = []
    for published, _ in simulated_races:
        for market in published:
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
    # the others, so favourites win slightly less often than their odds say).
    buckets: dict[float, list[tuple[float, bool]]] = defaultdict(list)
    edges = [0.0, 0.02, 0.05, 0.10, 0.15, 0.20, 0.30, 0.45, 1.0]
    for published, result in simulated_races:
        winner = result[0].horse_id
        odds = market_odds(published[-1])
        total = sum(1 / price for _, price in odds)
        for horse_id, price in odds:
            chance = (1 / price) / total
            low = max(edge for edge in edges if edge <= chance)
            buckets[low].append((chance, horse_id == winner))

    assert len(buckets) == len(edges) - 1
    for low, entries in sorted(buckets.items()):
        expected = statistics.mean(chance for chance, _ in entries)
        observed = sum(won for _, won in entries) / len(entries)
        standard_error = math.sqrt(expected * (1 - expected) / len(entries))
        tolerance = 4 * standard_error + 0.03 * expected
        assert abs(observed - expected) <= tolerance, (low, len(entries), observed, expected)


def test_favourites_and_long_shots_emerge(simulated_races):
    favourites = [min(p for _, p in market_odds(published[-1])) for published, _ in simulated_races]
    outsiders = [max(p for _, p in market_odds(published[-1])) for published, _ in simulated_races]

    assert 2.0 < statistics.median(favourites) < 4.5
    assert statistics.median(outsiders) > 30


def test_about_three_percent_do_not_finish_and_placings_are_a_permutation(simulated_races):
    starters = did_not_finish = 0
    for published, result in simulated_races:
        placings = [p.placing for p in result if p.finished]
        assert placings == list(range(1, len(placings) + 1))
        assert {p.horse_id for p in result} == set(published[-1].horse_ids)
        starters += len(result)
        did_not_finish += sum(not p.finished for p in result)

    assert 0.025 < did_not_finish / starters < 0.035


def test_markets_move_early_and_settle_late(simulated_races):
    early_moves, late_moves = [], []
    for published, _ in simulated_races[:3000]:
        moves = [
            statistics.mean(abs(math.log(b) - math.log(a)) for a, b in zip(before.chances, after.chances))
            for before, after in zip(published, published[1:])
        ]
        early_moves.append(moves[0])
        late_moves.append(moves[-1])

    assert statistics.mean(early_moves) > 2 * statistics.mean(late_moves)


def test_favourites_both_firm_and_drift(simulated_races):
    firmed = drifted = 0
    for published, _ in simulated_races[:3000]:
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
        for starter, chance in zip(starters, market.chances):
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
    for (_, before), (_, after) in zip(market_odds(market), market_odds(resumed)):
        assert after == pytest.approx(before, rel=0.02, abs=0.02)


def test_a_market_needs_starters():
    with pytest.raises(ValueError):
        market_open(starters=[], start_type="mobile", rng=random.Random(0))
