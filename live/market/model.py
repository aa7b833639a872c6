"""
A simulated tote win market: latent chances from race position and horse strength, a random walk
as money comes in, published decimal odds with a tote's overround, the market renormalised when a
runner is scratched, and a result drawn from the final chances (a dead heat when asked for; a
protest's outcome). Pure: no ORM, no I/O, all randomness from the ``random.Random`` it is given.
"""

from __future__ import annotations

import math
import random
from collections.abc import Collection, Sequence
from dataclasses import dataclass, replace

# --- Tuning, each a judgement about New Zealand harness racing -------------------------------

# Spread of horse ability in log-odds: a field of ten then has a favourite at about 2.5-4.0 and
# long shots past 50, as on a typical NZ card.
STRENGTH_SD = 1.0
# Mobile starts: the front row (barriers 1-8) gets worse the wider the draw; the second row
# (9 and out) starts behind and is boxed in, a clear disadvantage.
FRONT_ROW_BARRIERS = 8
MOBILE_COST_PER_BARRIER = 0.06
SECOND_ROW_COST = 0.45
# Standing starts: every 10 m conceded costs about as much as three places on the gate.
STANDING_COST_PER_10_M = 0.18
# The tote keeps 15-17 % of the win pool: the sum of 1/odds lies between these.
OVERROUND_MIN = 1.165
OVERROUND_MAX = 1.185
MIN_ODDS = 1.01
MAX_ODDS = 999.0
# No runner is ever so sure to win that its odds would fall below MIN_ODDS after the take.
MAX_CHANCE = 0.80
# Log-odds step sizes: wide while the pools are thin, settling as the money comes in.
EARLY_STEP_SD = 0.22
LATE_STEP_SD = 0.03
# Now and then one runner is backed heavily ("a plunge") or drifts right out.
PLUNGE_PROBABILITY = 0.08
PLUNGE_SD = 0.45
# About 3 % of harness starters do not finish: broke gait and were disqualified, or pulled up.
DID_NOT_FINISH_PROBABILITY = 0.03


@dataclass(frozen=True, slots=True)
class StartingPosition:
    horse_id: int
    barrier: int | None
    handicap_m: int | None


@dataclass(frozen=True, slots=True)
class Market:
    """A race's win market: each horse's latent log-strength, and how far the betting has run."""

    horse_ids: tuple[int, ...]
    log_strengths: tuple[float, ...]
    overround: float
    elapsed_s: float = 0.0

    @property
    def chances(self) -> tuple[float, ...]:
        """Return each horse's true chance of winning (they sum to 1)."""
        return _softmax(self.log_strengths)


@dataclass(frozen=True, slots=True)
class Placing:
    horse_id: int
    placing: int | None  # None: did not finish

    @property
    def finished(self) -> bool:
        return self.placing is not None


def position_effect(*, start_type: str | None, barrier: int | None, handicap_m: int | None) -> float:
    """Return the log-odds cost (zero or negative) of a starting position."""
    if start_type == "standing":
        return -STANDING_COST_PER_10_M * (handicap_m or 0) / 10
    if barrier is None:
        return 0.0
    if barrier <= FRONT_ROW_BARRIERS:
        return -MOBILE_COST_PER_BARRIER * (barrier - 1)
    return -SECOND_ROW_COST - MOBILE_COST_PER_BARRIER * (barrier - FRONT_ROW_BARRIERS - 1)


def market_open(*, starters: Sequence[StartingPosition], start_type: str | None, rng: random.Random) -> Market:
    """Return the opening market: a strength draw per horse plus its position's effect."""
    if not starters:
        raise ValueError("a market needs at least one starter")
    log_strengths = [
        rng.gauss(0.0, STRENGTH_SD) + position_effect(start_type=start_type, barrier=s.barrier, handicap_m=s.handicap_m)
        for s in starters
    ]
    return Market(
        horse_ids=tuple(s.horse_id for s in starters),
        log_strengths=_capped(log_strengths),
        overround=rng.uniform(OVERROUND_MIN, OVERROUND_MAX),
    )


def market_from_odds(*, odds: Sequence[tuple[int, float]], elapsed_s: float) -> Market:
    """Return the market that published these odds, to resume a simulation where it stopped."""
    implied = [1.0 / price for _, price in odds]
    total = sum(implied)
    return Market(
        horse_ids=tuple(horse_id for horse_id, _ in odds),
        log_strengths=_capped([math.log(p / total) for p in implied]),
        overround=min(max(total, OVERROUND_MIN), OVERROUND_MAX),
        elapsed_s=elapsed_s,
    )


def market_step(market: Market, *, elapsed_s: float, duration_s: float, rng: random.Random) -> Market:
    """Return the market after money came in until ``elapsed_s`` of a ``duration_s`` market."""
    progress = min(max(elapsed_s / duration_s, 0.0), 1.0)
    step_sd = EARLY_STEP_SD + (LATE_STEP_SD - EARLY_STEP_SD) * progress
    log_strengths = [value + rng.gauss(0.0, step_sd) for value in market.log_strengths]
    if rng.random() < PLUNGE_PROBABILITY * (1.0 - progress / 2):
        runner = rng.randrange(len(log_strengths))
        log_strengths[runner] += rng.gauss(0.0, PLUNGE_SD)
    return replace(market, log_strengths=_capped(log_strengths), elapsed_s=elapsed_s)


def market_without(market: Market, horse_ids: Collection[int]) -> Market:
    """
    Return the market once ``horse_ids`` are scratched: the money on them is refunded and the
    pools on the others stand, so each remaining runner's chance is its share of what is left
    (their order kept) and the tote's take, the overround, is unchanged.
    """
    kept = [index for index, horse_id in enumerate(market.horse_ids) if horse_id not in horse_ids]
    if not kept:
        raise ValueError("a market needs at least one runner")
    return replace(
        market,
        horse_ids=tuple(market.horse_ids[index] for index in kept),
        log_strengths=_capped([market.log_strengths[index] for index in kept]),
    )


def market_odds(market: Market) -> list[tuple[int, float]]:
    """Return the published decimal win odds: the chances with the tote's take, 2 decimals."""
    return [
        (horse_id, min(max(round(1.0 / (chance * market.overround), 2), MIN_ODDS), MAX_ODDS))
        for horse_id, chance in zip(market.horse_ids, market.chances, strict=True)
    ]


def result_draw(market: Market, *, rng: random.Random, dead_heat_at: int | None = None) -> list[Placing]:
    """
    Return the finishing order drawn from the final chances (Plackett-Luce / Harville: the winner
    by chance, then second among the rest, ...), with about 3 % of starters not finishing.
    Finishers come first with placings 1..k, then non-finishers. With ``dead_heat_at`` the
    finishers placed there and next share that placing and the next placing is skipped, a
    competition ranking (1, 1, 3); nearer the front if fewer finished. The order drawn is the
    same with or without it.
    """
    runners = list(zip(market.horse_ids, market.chances, strict=True))
    finishers = [r for r in runners if rng.random() >= DID_NOT_FINISH_PROBABILITY]
    if not finishers:  # a race always has a winner
        finishers = runners
    finisher_ids = {horse_id for horse_id, _ in finishers}
    did_not_finish = [horse_id for horse_id, _ in runners if horse_id not in finisher_ids]
    order: list[int] = []
    while finishers:
        total = sum(chance for _, chance in finishers)
        pick = rng.random() * total
        for index, (horse_id, chance) in enumerate(finishers):
            pick -= chance
            if pick <= 0 or index == len(finishers) - 1:
                order.append(horse_id)
                del finishers[index]
                break
    placings = list(range(1, len(order) + 1))
    if dead_heat_at is not None and len(order) >= 2:
        shared = min(max(dead_heat_at, 1), len(order) - 1)
        placings[shared] = shared  # the next finisher's placing is already shared + 2
    return [Placing(horse_id=h, placing=p) for h, p in zip(order, placings, strict=True)] + [
        Placing(horse_id=h, placing=None) for h in did_not_finish
    ]


def protest_pair(placings: Sequence[Placing]) -> tuple[Placing, Placing] | None:
    """
    Return who protests against whom, (protester, protested against): the first finisher placed
    behind another against the one just ahead of it, as second protests against the winner (or
    third against the second of two dead-heating for first). None if no finisher is behind another.
    """
    finishers = sorted((p for p in placings if p.finished), key=lambda p: p.placing or 0)
    for ahead, behind in zip(finishers, finishers[1:], strict=False):
        if behind.placing != ahead.placing:
            return behind, ahead
    return None


def placings_after_protest(placings: Sequence[Placing], *, upheld: bool) -> list[Placing]:
    """Return the placings once the stewards decide ``protest_pair``'s protest: unchanged if it is
    dismissed; upheld, the two swap placings, so the official order differs from the interim."""
    pair = protest_pair(placings)
    if not upheld or pair is None:
        return list(placings)
    protester, against = pair
    swapped = {protester.horse_id: against.placing, against.horse_id: protester.placing}
    amended = [Placing(horse_id=p.horse_id, placing=swapped.get(p.horse_id, p.placing)) for p in placings]
    return sorted(amended, key=lambda p: (p.placing is None, p.placing or 0))


def _softmax(values: Sequence[float]) -> tuple[float, ...]:
    top = max(values)
    weights = [math.exp(value - top) for value in values]
    total = sum(weights)
    return tuple(weight / total for weight in weights)


def _capped(log_strengths: Sequence[float]) -> tuple[float, ...]:
    # Flatten the whole field, keeping its order, until no runner is past MAX_CHANCE; centre the
    # values so that a long random walk cannot drift them without bound.
    mean = sum(log_strengths) / len(log_strengths)
    values = [value - mean for value in log_strengths]
    while len(values) > 1 and max(_softmax(values)) > MAX_CHANCE:
        values = [value * 0.95 for value in values]
    return tuple(values)
