"""
A simulated race's day, planned in advance from a seed: which starters are scratched and when
(before the market opens, or late), driver changes, a dead heat, a protest and its outcome, an
abandonment when asked for, and how long each step after the market takes. Pure: no ORM, no I/O,
all randomness from the ``random.Random`` it is given, so a seed reproduces a race's day and
tens of thousands of plans are checked in a second (tests/test_race_day.py).

A plan is made from the race's whole field as drawn (scratched starters included, in card
order), so a simulation that resumes, in this process or another, makes the same plan again and
carries on with what is still to come; live.market.simulation skips what is already stored.
"""

from __future__ import annotations

import math
import random
from collections.abc import Collection, Sequence
from dataclasses import dataclass, replace

# --- Tuning, each a judgement about a New Zealand harness race day -----------------------------

# About one scratching per two races (a horse off colour, a vet's certificate), a third of them
# late: after the market opened, when the tote refunds its money and reprices the rest.
SCRATCHINGS_PER_RACE = 0.5
LATE_SHARE = 1 / 3
# Random scratchings leave at least this many runners (stewards would rather re-draw a race than
# run it as a match); a forced one leaves at least two, so that there is still a market.
MIN_RUNNERS = 5
MIN_RUNNERS_FORCED = 2
# Now and then a driver is injured, suspended or stuck in traffic and another takes the reins.
DRIVER_CHANGE_PROBABILITY = 0.15
# The judges cannot separate two horses on the photo in about 1 % of races, for one of the
# placings that pay (first, second or third).
DEAD_HEAT_PROBABILITY = 0.01
DEAD_HEAT_PLACINGS = (1, 2, 3)
# A protest (a driver against another for interference) in about 3 % of races; the stewards
# uphold about a third, and the two horses' placings are then swapped.
PROTEST_PROBABILITY = 0.03
PROTEST_UPHELD_SHARE = 1 / 3
# When, as fractions of the market's duration, late changes land: late scratchings while the
# market has run a while and before the field goes out; driver changes any time before that.
LATE_SCRATCHING_WINDOW = (0.15, 0.85)
DRIVER_CHANGE_WINDOW = (0.0, 0.85)
ABANDON_WINDOW = (0.3, 0.8)
# After the close, in seconds (divided by SIMULATION_SPEEDUP like every simulated delay). The
# race is compressed as the 60 s market is (a real 2,000 m race takes about 2.5 minutes), so
# that a person watching sees the whole day in about a minute and a half.
RUNNING_S = (10.0, 15.0)  # from the start (the market closes) to the interim placings
OFFICIAL_AFTER_S = (5.0, 10.0)  # the judges' check before the placings are official
PROTEST_LODGED_S = (2.0, 5.0)  # from the interim placings to a protest
PROTEST_HEARING_S = (10.0, 20.0)  # the stewards' hearing
# Reasons for a (forced) abandonment, as a race office would give them.
ABANDON_REASONS = (
    "The track was declared unsafe",
    "A horse fell in the preliminaries and the start could not be delayed further",
    "Heavy rain: the stewards abandoned the race",
)
# Drivers who take over a drive: invented names, so that no real person is shown as replaced.
RELIEF_DRIVERS = (
    "Sam Ferris",
    "Kate Gillanders",
    "Tom Aldridge",
    "Mereana Walker",
    "Josh Kerr",
    "Ruby Tamsin",
    "Lachie Moore",
    "Aroha Bennett",
)


@dataclass(frozen=True, slots=True)
class Scratching:
    horse_id: int
    late: bool
    at_s: float  # when in the market a late scratching lands (0.0: before the market opens)


@dataclass(frozen=True, slots=True)
class DriverChange:
    horse_id: int
    driver_name: str
    at_s: float  # when in the market it lands (before the odds published then)


@dataclass(frozen=True, slots=True)
class Forced:
    """What a person asked to see (``manage.py simulate_race --scratch`` ...); None or False leaves
    it to chance. ``"either"`` forces the event and leaves its kind to the plan."""

    scratching: str | None = None  # "early", "late" or "either"
    dead_heat: bool = False
    dead_heat_at: int | None = None  # the placing shared, or the plan's pick
    protest: str | None = None  # "upheld", "dismissed" or "either"
    abandon: bool = False


NOTHING_FORCED = Forced()


@dataclass(frozen=True, slots=True)
class RaceDayPlan:
    scratchings: tuple[Scratching, ...]
    driver_changes: tuple[DriverChange, ...]
    dead_heat_at: int | None  # the placing two finishers share, if any
    protest: bool
    protest_upheld: bool
    abandon_at_s: float | None  # when in the market the race is abandoned, if it is
    abandon_reason: str
    running_s: float
    official_after_s: float
    protest_lodged_s: float
    protest_hearing_s: float


def race_day_plan(
    *, horse_ids: Sequence[int], market_duration_s: float, rng: random.Random, forced: Forced = NOTHING_FORCED
) -> RaceDayPlan:
    """
    Return the plan of a race's day for a field (every starter as drawn, in card order). Every
    draw is made, in the same order, whatever is forced, so forcing one thing changes nothing else.
    """
    field = list(horse_ids)
    count = min(_poisson(SCRATCHINGS_PER_RACE, rng), max(0, len(field) - MIN_RUNNERS))
    scratched = rng.sample(field, count)
    scratchings = [_scratching(horse_id, rng.random() < LATE_SHARE, market_duration_s, rng) for horse_id in scratched]
    runners = [horse_id for horse_id in field if horse_id not in scratched]
    changed = rng.choice(runners) if runners else None
    driver_changes = []
    if changed is not None and rng.random() < DRIVER_CHANGE_PROBABILITY:
        driver_changes.append(
            DriverChange(
                horse_id=changed,
                driver_name=rng.choice(RELIEF_DRIVERS),
                at_s=rng.uniform(*DRIVER_CHANGE_WINDOW) * market_duration_s,
            )
        )
    dead_heat = rng.random() < DEAD_HEAT_PROBABILITY
    dead_heat_at = rng.choice(DEAD_HEAT_PLACINGS)
    protest = rng.random() < PROTEST_PROBABILITY
    upheld = rng.random() < PROTEST_UPHELD_SHARE
    abandon_at_s = rng.uniform(*ABANDON_WINDOW) * market_duration_s
    abandon_reason = rng.choice(ABANDON_REASONS)
    running_s, official_after_s = rng.uniform(*RUNNING_S), rng.uniform(*OFFICIAL_AFTER_S)
    protest_lodged_s, protest_hearing_s = rng.uniform(*PROTEST_LODGED_S), rng.uniform(*PROTEST_HEARING_S)
    # What a person asked to see overrides chance; abandonment is never left to chance.
    if forced.dead_heat:
        dead_heat, dead_heat_at = True, forced.dead_heat_at or dead_heat_at
    if forced.protest is not None:
        protest = True
        upheld = upheld if forced.protest == "either" else forced.protest == "upheld"
    if forced.scratching is not None:
        scratchings = _scratchings_forced(scratchings, forced.scratching, field, market_duration_s, rng)
    return RaceDayPlan(
        scratchings=tuple(scratchings),
        driver_changes=tuple(driver_changes),
        dead_heat_at=dead_heat_at if dead_heat else None,
        protest=protest,
        protest_upheld=upheld,
        abandon_at_s=abandon_at_s if forced.abandon else None,
        abandon_reason=abandon_reason,
        running_s=running_s,
        official_after_s=official_after_s,
        protest_lodged_s=protest_lodged_s,
        protest_hearing_s=protest_hearing_s,
    )


def _scratchings_forced(
    scratchings: list[Scratching], kind: str, field: list[int], market_duration_s: float, rng: random.Random
) -> list[Scratching]:
    """Return the planned scratchings with at least one of ``kind`` (early, late or either)."""
    scratchings = list(scratchings)
    wanted_late = {"early": False, "late": True}.get(kind)
    if any(wanted_late is None or s.late == wanted_late for s in scratchings):
        return scratchings
    late = rng.random() < LATE_SHARE if wanted_late is None else wanted_late
    if scratchings:  # the first planned scratching becomes the kind asked for
        scratchings[0] = _scratching(scratchings[0].horse_id, late, market_duration_s, rng)
        return scratchings
    if len(field) - 1 < MIN_RUNNERS_FORCED:
        raise ValueError(f"a field of {len(field)} is too small to scratch a starter from")
    return [_scratching(rng.choice(field), late, market_duration_s, rng)]


def _scratching(horse_id: int, late: bool, market_duration_s: float, rng: random.Random) -> Scratching:
    at_s = rng.uniform(*LATE_SCRATCHING_WINDOW) * market_duration_s
    return Scratching(horse_id=horse_id, late=late, at_s=at_s if late else 0.0)


def _poisson(mean: float, rng: random.Random) -> int:
    # Knuth's method: fine for a small mean.
    limit, count, product = math.exp(-mean), 0, rng.random()
    while product > limit:
        count += 1
        product *= rng.random()
    return count


def plan_remaining(
    plan: RaceDayPlan, *, market_open: bool, scratched: Collection[int], drivers_changed: Collection[int]
) -> RaceDayPlan:
    """
    Return what is still to come of ``plan`` for a race whose day stands here, as stored: the
    scratchings of starters still running (early ones only while the market has not opened: once
    it is up they would be late, which the plan did not say), and the driver changes not made yet.
    A change whose time has passed is still to come (a simulation stopped before it); one stored is
    never made again.
    """
    return replace(
        plan,
        scratchings=tuple(s for s in plan.scratchings if s.horse_id not in scratched and (s.late or not market_open)),
        driver_changes=tuple(d for d in plan.driver_changes if d.horse_id not in drivers_changed),
    )


def plan_seed(*, race_id: int, seed: int | None, epoch: str) -> str:
    """Return the seed a race's simulation plans and prices from: the one given (the same day
    again after a reset, for ``simulate_race --seed``; the same for any race with as many
    starters), or the race's epoch of updates, which any process reads, so that a simulation
    resumed elsewhere plans the same day, and a reset race a new one."""
    return f"seed:{seed}" if seed is not None else f"race:{race_id}:epoch:{epoch}"
