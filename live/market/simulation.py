"""
A race's simulated day, as a tote feed and a race office would live it: scratchings before the
market, the market opening with odds every 5-10 s for about 60 s, late scratchings (the market
renormalised) and driver changes while it runs, the close at the (sped-up) start, the interim
placings once they have run, a protest now and then, and the official result a little later; or,
when asked for, an abandonment. live.market.race_day plans the day from a seed; this module lives
it. Each change is stored through races.services, which numbers it and announces it once
committed, for live.protocol to broadcast (the one path every writer takes: feed, admin,
simulation).

A stopped simulation (no viewers left, its process killed) resumes from what is stored: the last
simulated market, the starters already scratched, the driver changes already made in this epoch,
the interim placings and whether a protest was lodged. It makes the same plan again (the seed is
the race's epoch) and skips what is done, so nothing is redone or contradicted.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import enum
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from channels.db import database_sync_to_async
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from live.market import model as market_model
from live.market.race_day import (
    MIN_RUNNERS_FORCED,
    NOTHING_FORCED,
    DriverChange,
    Forced,
    RaceDayPlan,
    Scratching,
    plan_remaining,
    plan_seed,
    race_day_plan,
)
from races.lifecycle import TransitionError
from races.models import OddsSnapshot, Race, RaceUpdate, Source
from races.selectors import (
    HorseOddsRow,
    race_card_get,
    race_market_state_get,
    race_result_get,
    race_updates_after,
)
from races.services import (
    Actor,
    Change,
    RaceClosedError,
    odds_snapshot_record,
    race_result_record,
    race_status_change,
    starter_driver_change,
    starter_scratch,
)

T = TypeVar("T")

SIMULATION = Actor(Source.SIMULATION)
# A race past its market is the simulation's to carry on only if the simulation ran its market.
PAST_THE_MARKET = (Race.Status.CLOSED, Race.Status.INTERIM, Race.Status.PROTEST)
SIMULATED_STATUSES = (Race.Status.SCHEDULED, Race.Status.OPEN, *PAST_THE_MARKET)


class SimulationOutcome(enum.Enum):
    FINISHED = "finished"  # the race's day is over: its result is official, or it was abandoned
    NOTHING_TO_RUN = "nothing to run"  # no such race, no starters, over, or a feed's or the office's
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


# --- What the simulation stored, for whoever runs it to show (manage.py simulate_race) ----------


@dataclass(frozen=True, slots=True)
class OddsStored:
    """A simulated market's odds, as stored: (horse_id, decimal odds) in runner order."""

    race_id: int
    taken_at: dt.datetime
    odds: tuple[tuple[int, float], ...]


@dataclass(frozen=True, slots=True)
class StatusStored:
    """The race moved to a status (the first odds open the market; results move it too)."""

    race_id: int
    at: dt.datetime
    status: str
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class StarterStored:
    """A change to the field: a scratching (late once the market is up) or a new driver."""

    race_id: int
    at: dt.datetime
    horse_id: int
    change: str  # races.models.StarterChange.Change: scratched, driver_changed
    late: bool = False
    driver_name: str | None = None


@dataclass(frozen=True, slots=True)
class ResultStored:
    """A simulated race's placings, as stored: finishers in placing order, then non-finishers;
    interim, or official."""

    race_id: int
    declared_at: dt.datetime
    placings: tuple[market_model.Placing, ...]
    official: bool = True


Update = OddsStored | StatusStored | StarterStored | ResultStored


# --- Where a race's day stands ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RaceDayState:
    """A race's day as stored: what a simulation starts or resumes from."""

    race_id: int
    status: str
    fed: bool
    epoch: str
    update_seq: int  # the race's newest update: what this state has seen
    start_type: str | None
    field: tuple[int, ...]  # every starter as drawn (scratched ones too), in card order
    runner_numbers: dict[int, int | None]
    scratched: frozenset[int]
    runners: tuple[market_model.StartingPosition, ...]  # not scratched, in card order
    last_odds: list[HorseOddsRow] | None  # the last simulated market, if any
    last_elapsed_s: float
    placings: tuple[market_model.Placing, ...]  # interim (or official) placings, once in
    protest_lodged: bool
    drivers_changed: frozenset[int]  # horses given a new driver in this epoch

    @property
    def runnable(self) -> bool:
        """Whether the simulation may run (or carry on) this race."""
        if self.fed or not self.runners or self.status not in SIMULATED_STATUSES:
            return False
        return self.status not in PAST_THE_MARKET or self.last_odds is not None


def race_day_state_get(*, race_id: int) -> RaceDayState | None:
    """Return where the race's day stands, or None if there is no such race (at most eight queries,
    once per simulation run)."""
    # The card first: its update_seq is what the state has seen. A change stored while the rest
    # is read makes the run's first write find the race moved on, and read it again.
    card = race_card_get(race_id=race_id)
    market = race_market_state_get(race_id=race_id)
    if market is None or card is None:
        return None
    result = race_result_get(race_id=race_id)
    log = race_updates_after(race_id=race_id, after_seq=0, limit=card["market"]["update_seq"])
    starters = card["starters"]
    return RaceDayState(
        race_id=race_id,
        status=market.status,
        fed=market.fed,
        epoch=card["market"]["updates_epoch"],
        update_seq=card["market"]["update_seq"],
        start_type=market.start_type,
        field=tuple(s["horse_id"] for s in starters),
        runner_numbers={s["horse_id"]: s["runner_number"] for s in starters},
        scratched=frozenset(s["horse_id"] for s in starters if s["scratched"]),
        runners=tuple(
            market_model.StartingPosition(horse_id=p.horse_id, barrier=p.barrier, handicap_m=p.handicap_m)
            for p in market.positions
        ),
        last_odds=market.last_simulated_odds,
        last_elapsed_s=market.last_simulated_elapsed_s or 0.0,
        placings=tuple(market_model.Placing(horse_id=h, placing=p) for h, p in result.result) if result else (),
        protest_lodged=any(
            row["kind"] == RaceUpdate.Kind.STATUS and row["data"]["status"] == Race.Status.PROTEST for row in log
        ),
        drivers_changed=frozenset(
            row["data"]["starter"]["horse_id"]
            for row in log
            if row["kind"] == RaceUpdate.Kind.STARTER and row["data"]["change"] == "driver_changed"
        ),
    )


# --- Running it ---------------------------------------------------------------------------------


async def _always_leading() -> bool:
    return True


class _LeadLost(Exception):
    pass


class _MovedOn(Exception):
    """The race changed since this run last saw it."""


async def race_simulation_run(
    *,
    race_id: int,
    timing: SimulationTiming,
    seed: int | None = None,
    forced: Forced = NOTHING_FORCED,
    still_leading: Callable[[], Awaitable[bool]] = _always_leading,
    on_update: Callable[[Update], None] | None = None,
) -> SimulationOutcome:
    """
    Live the race's day to its official result (or its abandonment), or until ``still_leading``
    says another process has taken the race over. ``seed`` reproduces a day (by default the
    race's epoch: the same day for every process that resumes it, a new one after a reset);
    ``forced`` makes what a person asked to see happen. Cancelling it stops it between updates,
    never between storing an update and announcing it. A change someone else makes (a live
    feed, the race office, a simulation left running by a process that lost the race) is noticed
    at the next write, and the day carries on from what is stored then, unless the race is no
    longer the simulation's: fed by a feed, official or abandoned.
    """
    state = await database_sync_to_async(race_day_state_get)(race_id=race_id)
    rng, rng_seed = random.Random(), ""
    while state is not None and state.runnable:
        base = plan_seed(race_id=race_id, seed=seed, epoch=state.epoch)
        plan = race_day_plan(
            horse_ids=state.field,
            market_duration_s=timing.market_duration_s,
            rng=random.Random(f"{base}:plan"),
            forced=forced,
        )
        if base != rng_seed:  # the same market goes on; a reset race's is a new one
            rng, rng_seed = random.Random(f"{base}:market"), base
        day = _RaceDay(
            state=state,
            plan=plan,
            timing=timing,
            rng=rng,
            still_leading=still_leading,
            on_update=on_update or (lambda update: None),
        )
        try:
            return await day.run()
        except _MovedOn:
            # Someone changed the race since this run last saw it (a feed, the race office, a
            # simulation left running by a process that lost the race): carry on from what is
            # stored now, as a simulation resumed elsewhere would, unless the race is no longer
            # the simulation's to run.
            state = await database_sync_to_async(race_day_state_get)(race_id=race_id)
        except (RaceClosedError, TransitionError, Race.DoesNotExist):  # the race refused a write
            return SimulationOutcome.NOTHING_TO_RUN
        except _LeadLost:
            return SimulationOutcome.LOST_LEAD
    return SimulationOutcome.NOTHING_TO_RUN


class _RaceDay:
    """One run of a race's day: the plan, where the race stands, and the market as it moves."""

    def __init__(
        self,
        *,
        state: RaceDayState,
        plan: RaceDayPlan,
        timing: SimulationTiming,
        rng: random.Random,
        still_leading: Callable[[], Awaitable[bool]],
        on_update: Callable[[Update], None],
    ) -> None:
        self.race_id = state.race_id
        self.state = state
        self.status = state.status
        self.plan = plan
        self.timing = timing
        self.rng = rng
        self.still_leading = still_leading
        self.on_update = on_update
        self.seen_seq = state.update_seq  # the race's newest update this run has seen (or made)
        self.market = self._market_at_start()
        self.placings = list(state.placings)

    async def run(self) -> SimulationOutcome:
        if self.status in (Race.Status.SCHEDULED, Race.Status.OPEN) and not await self._market_run():
            return SimulationOutcome.FINISHED  # abandoned
        if self.status == Race.Status.CLOSED:
            await self._race_run()
        if self.status == Race.Status.INTERIM:
            await self._interim()
        if self.status == Race.Status.PROTEST:
            await self._protest_hearing()
        return SimulationOutcome.FINISHED

    # --- The market ---

    def _market_at_start(self) -> market_model.Market:
        state = self.state
        if state.last_odds:
            market = market_model.market_from_odds(
                odds=[(row["horse_id"], row["odds"]) for row in state.last_odds], elapsed_s=state.last_elapsed_s
            )
            runners = {p.horse_id for p in state.runners}
            gone = set(market.horse_ids) - runners  # scratched since those odds were published
            return market_model.market_without(market, gone) if gone else market
        return market_model.market_open(starters=state.runners, start_type=state.start_type, rng=self.rng)

    async def _market_run(self) -> bool:
        """Run the market to the close; return False if the race was abandoned instead."""
        remaining = plan_remaining(
            self.plan,
            market_open=self.status != Race.Status.SCHEDULED,
            scratched=self.state.scratched,
            drivers_changed=self.state.drivers_changed,
        )
        early = [s for s in remaining.scratchings if not s.late]
        late = [s for s in remaining.scratchings if s.late]
        drivers = list(remaining.driver_changes)
        duration_s = self.timing.market_duration_s
        while True:
            interval_s = self.rng.uniform(*self.timing.odds_interval_s)
            await self._sleep(interval_s)
            elapsed_s = self.market.elapsed_s + interval_s
            if elapsed_s > duration_s:
                break
            if remaining.abandon_at_s is not None and remaining.abandon_at_s <= elapsed_s:
                await self._abandon()
                return False
            # Scratchings announced before the market opens come just before its first odds; late
            # ones once it is up, each priced in by the odds that follow (the market renormalised).
            if self.status == Race.Status.SCHEDULED:
                due, early = early, []
            else:
                due, late = [s for s in late if s.at_s <= elapsed_s], [s for s in late if s.at_s > elapsed_s]
            for scratching in due:
                await self._scratch(scratching)
            due_drivers, drivers = (
                [d for d in drivers if d.at_s <= elapsed_s],
                [d for d in drivers if d.at_s > elapsed_s],
            )
            for change in due_drivers:
                await self._driver_change(change)
            self.market = market_model.market_step(
                self.market, elapsed_s=elapsed_s, duration_s=duration_s, rng=self.rng
            )
            await self._odds()
        await self._store(lambda: race_status_change(**self._now(), status=Race.Status.CLOSED))
        self._status_moved(Race.Status.CLOSED)
        return True

    async def _abandon(self) -> None:
        reason = self.plan.abandon_reason
        await self._store(lambda: race_status_change(**self._now(), status=Race.Status.ABANDONED, reason=reason))
        self._status_moved(Race.Status.ABANDONED, reason)

    async def _scratch(self, scratching: Scratching) -> None:
        if scratching.horse_id not in self.market.horse_ids:
            return  # scratched already (by the race office, say)
        if len(self.market.horse_ids) - 1 < MIN_RUNNERS_FORCED:
            return  # the race office left too few runners to scratch another
        late = self.status == Race.Status.OPEN
        if await self._store(lambda: starter_scratch(**self._now(), horse_id=scratching.horse_id)) is Change.CHANGED:
            self._announce(StarterStored(self.race_id, timezone.now(), scratching.horse_id, "scratched", late=late))
        self.market = market_model.market_without(self.market, {scratching.horse_id})

    async def _driver_change(self, change: DriverChange) -> None:
        if change.horse_id not in self.market.horse_ids:
            return  # a scratched horse has no driver to change
        name = change.driver_name
        changed = await self._store(
            lambda: starter_driver_change(**self._now(), horse_id=change.horse_id, driver_name=name)
        )
        if changed is Change.CHANGED:  # not if it is that driver already (kept from a run before a reset)
            self._announce(
                StarterStored(self.race_id, timezone.now(), change.horse_id, "driver_changed", driver_name=name)
            )

    async def _odds(self) -> None:
        stored = await self._store_odds()
        if self.status == Race.Status.SCHEDULED:
            self._status_moved(Race.Status.OPEN)  # the first odds opened the market
        self._announce(stored)

    async def _store_odds(self) -> OddsStored:
        odds, taken_at, elapsed_s = market_model.market_odds(self.market), timezone.now(), self.market.elapsed_s
        await self._store(
            lambda: odds_snapshot_record(
                race_id=self.race_id,
                odds=odds,
                source=OddsSnapshot.Source.SIMULATION,
                taken_at=taken_at,
                market_elapsed_s=elapsed_s,
            )
        )
        return OddsStored(self.race_id, taken_at, tuple(odds))

    # --- After the close ---

    async def _race_run(self) -> None:
        """They race; the judges call the interim placings."""
        await self._sleep(self.plan.running_s)
        placings = market_model.result_draw(self.market, rng=self.rng, dead_heat_at=self.plan.dead_heat_at)
        await self._result(placings, official=False)

    async def _interim(self) -> None:
        pair = market_model.protest_pair(self.placings)
        if self.plan.protest and not self.state.protest_lodged and pair is not None:
            await self._sleep(self.plan.protest_lodged_s)
            protester, against = pair
            reason = (
                f"Protest: {self._runner(protester.horse_id)} ({_ordinal(protester.placing)}) against "
                f"{self._runner(against.horse_id)} ({_ordinal(against.placing)})"
            )
            await self._store(lambda: race_status_change(**self._now(), status=Race.Status.PROTEST, reason=reason))
            self._status_moved(Race.Status.PROTEST, reason)
            return
        await self._sleep(self.plan.official_after_s)
        await self._result(self.placings, official=True)

    async def _protest_hearing(self) -> None:
        await self._sleep(self.plan.protest_hearing_s)
        pair = market_model.protest_pair(self.placings)
        if pair is None or not (self.plan.protest and self.plan.protest_upheld):
            reason = "Protest dismissed: the placings stand"
            await self._store(lambda: race_status_change(**self._now(), status=Race.Status.OFFICIAL, reason=reason))
            self._status_moved(Race.Status.OFFICIAL, reason)
            self._announce(ResultStored(self.race_id, timezone.now(), tuple(self.placings), official=True))
            return
        protester, against = pair
        amended = market_model.placings_after_protest(self.placings, upheld=True)
        reason = (
            f"Protest upheld: {self._runner(protester.horse_id)} placed {_ordinal(against.placing)}, "
            f"{self._runner(against.horse_id)} {_ordinal(protester.placing)}"
        )

        def uphold() -> None:
            race_status_change(**self._now(), status=Race.Status.INTERIM, reason=reason)
            race_result_record(
                race_id=self.race_id,
                placings={p.horse_id: p.placing for p in amended},
                declared_at=timezone.now(),
                source=Source.SIMULATION,
                official=False,
            )

        await self._store(uphold)
        self._status_moved(Race.Status.INTERIM, reason)
        self._announce(ResultStored(self.race_id, timezone.now(), tuple(amended), official=False))
        self.placings = amended
        await self._sleep(self.plan.official_after_s)
        await self._result(amended, official=True)

    async def _result(self, placings: list[market_model.Placing], *, official: bool) -> None:
        declared_at = timezone.now()
        await self._store(
            lambda: race_result_record(
                race_id=self.race_id,
                placings={p.horse_id: p.placing for p in placings},
                declared_at=declared_at,
                source=Source.SIMULATION,
                official=official,
            )
        )
        self._status_moved(Race.Status.OFFICIAL if official else Race.Status.INTERIM)
        self._announce(ResultStored(self.race_id, declared_at, tuple(placings), official=official))
        self.placings = list(placings)

    # --- Plumbing ---

    async def _sleep(self, simulated_s: float) -> None:
        await asyncio.sleep(simulated_s / self.timing.speedup)

    async def _store(self, write: Callable[[], T]) -> T:
        """Make ``write`` (service calls) as the simulation, if this process still runs the race
        and the race is as this run last saw it (raise _MovedOn if not)."""
        if not await self.still_leading():
            raise _LeadLost
        # Shielded: cancelling the simulation never leaves a stored update unannounced.
        result, self.seen_seq = await asyncio.shield(
            database_sync_to_async(_simulated)(self.race_id, self.seen_seq, write)
        )
        return result

    def _now(self) -> dict[str, Any]:
        return {"race_id": self.race_id, "at": timezone.now(), "actor": SIMULATION}

    def _status_moved(self, status: str, reason: str | None = None) -> None:
        self.status = status
        self._announce(StatusStored(self.race_id, timezone.now(), status, reason))

    def _announce(self, update: Update) -> None:
        self.on_update(update)

    def _runner(self, horse_id: int) -> str:
        number = self.state.runner_numbers.get(horse_id)
        return f"#{number}" if number is not None else f"horse {horse_id}"


@transaction.atomic
def _simulated(race_id: int, seen_seq: int, write: Callable[[], T]) -> tuple[T, int]:
    """
    Make ``write`` in one transaction, under the race's row lock, only if the race's newest update
    is still ``seen_seq``: a simulation never writes over a change it has not seen (raise _MovedOn).
    Return what ``write`` returned and the race's newest update after it. One transaction: a
    simulation resumed after a crash finds all of a write's changes or none. The services refuse
    a simulation's write to a race a live feed has taken.
    """
    if Race.objects.select_for_update().values_list("update_seq", flat=True).get(pk=race_id) != seen_seq:
        raise _MovedOn
    result = write()
    return result, Race.objects.values_list("update_seq", flat=True).get(pk=race_id)


def _ordinal(placing: int | None) -> str:
    if placing is None:
        return "did not finish"
    suffix = "th" if 10 <= placing % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(placing % 10, "th")
    return f"{placing}{suffix}"
