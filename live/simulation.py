"""
A race's simulated market, run as the spec's Implementation Notes describe: odds every 5-10 s for
about 60 s, then the result. Each update is stored first, then published through the one
broadcasting path; a stopped simulation resumes from the last market it stored.
"""

from __future__ import annotations

import asyncio
import enum
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from channels.db import database_sync_to_async
from django.conf import settings
from django.utils import timezone

from live import market as market_model
from live.messages import HorseOdds, HorseResult, OddsUpdateMessage, ResultUpdateMessage
from races.models import OddsSnapshot, Race
from races.selectors import RaceMarketState, race_market_state_get
from races.services import RaceClosedError, odds_snapshot_record, race_result_record


class SimulationOutcome(enum.Enum):
    FINISHED = "finished"  # the result is declared: nothing more to simulate
    NOTHING_TO_RUN = "nothing to run"  # no such race, no starters, finished, or fed by a feed
    LOST_LEAD = "lost lead"  # another process now runs this race


@dataclass(frozen=True, slots=True)
class SimulationTiming:
    odds_interval_s: tuple[float, float]
    market_duration_s: float
    speedup: float

    @classmethod
    def from_settings(cls, *, speedup: float | None = None) -> SimulationTiming:
        return cls(
            odds_interval_s=settings.SIMULATION_ODDS_INTERVAL_S,
            market_duration_s=settings.SIMULATION_MARKET_DURATION_S,
            speedup=speedup or settings.SIMULATION_SPEEDUP,
        )


Update = OddsUpdateMessage | ResultUpdateMessage


async def _always_leading() -> bool:
    return True


async def race_simulation_run(
    *,
    race_id: int,
    rng: random.Random,
    timing: SimulationTiming,
    still_leading: Callable[[], Awaitable[bool]] = _always_leading,
    on_update: Callable[[Update], None] | None = None,
) -> SimulationOutcome:
    """
    Run the race's market to its result, or until ``still_leading`` says another process has
    taken the race over. Cancelling it stops it between updates, never between storing an
    update and publishing it.
    """
    state = await database_sync_to_async(race_market_state_get)(race_id=race_id)
    if state is None or state.status == Race.Status.FINISHED or state.fed or not state.positions:
        return SimulationOutcome.NOTHING_TO_RUN
    market = _market_resumed_or_opened(state, rng)
    while True:
        interval_s = rng.uniform(*timing.odds_interval_s)
        await asyncio.sleep(interval_s / timing.speedup)
        elapsed_s = market.elapsed_s + interval_s
        if elapsed_s > timing.market_duration_s:
            break
        market = market_model.market_step(
            market, elapsed_s=elapsed_s, duration_s=timing.market_duration_s, rng=rng
        )
        if not await still_leading():
            return SimulationOutcome.LOST_LEAD
        try:
            message = await asyncio.shield(_odds_record_and_publish(race_id, market))
        except RaceClosedError:  # a feed took the race over, or its result was declared
            return SimulationOutcome.NOTHING_TO_RUN
        if on_update:
            on_update(message)
    placings = market_model.result_draw(market, rng=rng)
    if not await still_leading():
        return SimulationOutcome.LOST_LEAD
    try:
        message = await asyncio.shield(_result_record_and_publish(race_id, placings))
    except RaceClosedError:
        return SimulationOutcome.NOTHING_TO_RUN
    if on_update:
        on_update(message)
    return SimulationOutcome.FINISHED


def _market_resumed_or_opened(state: RaceMarketState, rng: random.Random) -> market_model.Market:
    if state.last_simulated_odds:
        return market_model.market_from_odds(
            odds=[(row["horse_id"], row["odds"]) for row in state.last_simulated_odds],
            elapsed_s=state.last_simulated_elapsed_s or 0.0,
        )
    positions = [
        market_model.StartingPosition(horse_id=p.horse_id, barrier=p.barrier, handicap_m=p.handicap_m)
        for p in state.positions
    ]
    return market_model.market_open(starters=positions, start_type=state.start_type, rng=rng)


async def _odds_record_and_publish(race_id: int, market: market_model.Market) -> OddsUpdateMessage:
    odds = market_model.market_odds(market)
    taken_at = timezone.now()
    # Stored, then broadcast once the transaction commits (races.events -> live.receivers).
    await database_sync_to_async(odds_snapshot_record)(
        race_id=race_id,
        odds=odds,
        source=OddsSnapshot.Source.SIMULATION,
        taken_at=taken_at,
        market_elapsed_s=market.elapsed_s,
    )
    return OddsUpdateMessage(
        race_id=race_id,
        timestamp=taken_at,
        odds=tuple(HorseOdds(horse_id=horse_id, odds=price) for horse_id, price in odds),
    )


async def _result_record_and_publish(
    race_id: int, placings: list[market_model.Placing]
) -> ResultUpdateMessage:
    declared_at = timezone.now()
    await database_sync_to_async(race_result_record)(
        race_id=race_id,
        placings={p.horse_id: p.placing for p in placings},
        declared_at=declared_at,
        source=OddsSnapshot.Source.SIMULATION,
    )
    return ResultUpdateMessage(
        race_id=race_id,
        timestamp=declared_at,
        results=tuple(HorseResult(horse_id=p.horse_id, placing=p.placing, finished=p.finished) for p in placings),
    )
