"""
Writes of the racing domain, each in one transaction: a race's status, its odds, its field
(scratchings, reinstatements, driver changes), its interim and official results, and a reset.

Every write that clients must hear of takes the race's row lock, numbers the update in the same
transaction (Race.update_seq, logged in RaceUpdate) and announces it once the transaction commits
(races.events.update_logged). Where a write implies a move of the race's status (the first odds
open the market; a result posted while the market is up closes it), the move is made, logged and
announced first, as if it had been asked for. races.lifecycle says which moves are allowed.
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from itertools import groupby, takewhile
from typing import Any

from django.db import transaction
from django.db.models.functions import Lower, Trim

from races import events, lifecycle
from races.lifecycle import TransitionError, placings_problems
from races.models import (
    Driver,
    OddsSnapshot,
    Race,
    RaceStatusChange,
    RaceUpdate,
    Source,
    Starter,
    StarterChange,
    new_updates_epoch,
)
from races.selectors import result_in_order, starter_card_get

__all__ = [
    "Change",
    "RaceClosedError",
    "ResultChange",
    "ResultConflictError",
    "TransitionError",
    "odds_snapshot_record",
    "placings_problems",
    "race_reset",
    "race_result_declare_entered",
    "race_result_make_official",
    "race_result_record",
    "race_start_delay",
    "race_status_change",
    "starter_driver_change",
    "starter_reinstate",
    "starter_scratch",
]


class RaceClosedError(Exception):
    """The race does not take this write in its status (or from this writer)."""


class ResultConflictError(Exception):
    """A different official result is declared, and the request did not say it corrects it."""

    def __init__(self, declared: Mapping[int, int | None]) -> None:
        super().__init__("a different result is already declared for this race")
        self.declared = dict(declared)


class ResultChange(enum.Enum):
    DECLARED = "declared"
    CORRECTED = "corrected"
    UNCHANGED = "unchanged"


class Change(enum.Enum):
    """What a write did: a change (announced to clients) or nothing (the same again)."""

    CHANGED = "changed"
    UNCHANGED = "unchanged"


@dataclass(frozen=True, slots=True)
class Actor:
    """Who makes a change: the feed, the race office (a user) or the simulation."""

    source: str
    user: Any = None


def _race_locked(race_id: int) -> Race:
    # The row lock orders concurrent writers of one race: a feed's write and a simulation's next
    # one cannot interleave, and the update numbers follow commit order.
    return (
        Race.objects.select_for_update()
        .only("status", "fed", "update_seq", "updates_epoch", "race_datetime")
        .get(pk=race_id)
    )


def _not_simulating_fed(race: Race, source: str) -> None:
    """Refuse a simulation's write to a race a live feed has written to: the feed's word stands."""
    if source == Source.SIMULATION and race.fed:
        raise RaceClosedError(f"race {race.pk} is fed by a live feed: it is not simulated")


def _log(race: Race, *, kind: str, at: dt.datetime, data: Any) -> int:
    """Number the race's next update, log it and announce it once committed (the caller holds
    the race's row lock, so the numbers are gap-free and in commit order); return its seq."""
    seq = race.update_seq + 1
    RaceUpdate.objects.create(race_id=race.pk, seq=seq, kind=kind, published_at=at, data=data)
    race.update_seq = seq
    Race.objects.filter(pk=race.pk).update(update_seq=seq)
    _on_commit(
        partial(
            events.update_logged.send,
            sender=RaceUpdate,
            race_id=race.pk,
            epoch=race.updates_epoch,
            seq=seq,
            kind=kind,
            published_at=at,
            data=data,
        )
    )
    return seq


def _on_commit(send: partial) -> None:
    """Announce once the transaction commits; a failing listener is logged, never undoes the write."""

    def announce() -> None:
        send()

    # A named function, not the partial itself: Django's robust on_commit names the callback
    # in its log line with __qualname__, which a partial lacks (the request then failed).
    transaction.on_commit(announce, robust=True)


# --- Status -------------------------------------------------------------------------------------


def _move(
    race: Race,
    status: str,
    *,
    at: dt.datetime,
    actor: Actor,
    reason: str = "",
    race_datetime: dt.datetime | None = None,
) -> None:
    """Move the race to ``status`` (or, the same status, to a new start time), log and announce it."""
    previous = race.status
    starts_at = race_datetime if race_datetime is not None else race.race_datetime
    seq = _log(
        race,
        kind=RaceUpdate.Kind.STATUS,
        at=at,
        data={
            "status": status,
            "previous": previous,
            "race_datetime": starts_at.isoformat() if starts_at else None,
            "reason": reason or None,
        },
    )
    RaceStatusChange.objects.create(
        race_id=race.pk, seq=seq, status=status, previous=previous, race_datetime=starts_at, reason=reason,
        source=actor.source, user=actor.user, changed_at=at,
    )  # fmt: skip
    fields: dict[str, Any] = {"status": status, "race_datetime": starts_at}
    if status == Race.Status.ABANDONED:
        # An abandoned race has no result: interim placings go.
        Starter.objects.filter(race_id=race.pk).update(placing=None, did_not_finish=False)
        fields["result_declared_at"] = None
    Race.objects.filter(pk=race.pk).update(**fields)
    race.status, race.race_datetime = status, starts_at


def _move_to(race: Race, status: str, *, at: dt.datetime, actor: Actor) -> None:
    """Move the race through the statuses between its own and ``status``, each announced."""
    for step in lifecycle.path_to(race.status, status):
        _move(race, step, at=at, actor=actor)


@transaction.atomic
def race_status_change(
    *,
    race_id: int,
    status: str,
    at: dt.datetime,
    actor: Actor,
    reason: str = "",
    race_datetime: dt.datetime | None = None,
) -> Change:
    """
    Move a race to ``status`` (raise TransitionError if its status does not allow it), or, with
    its own status and a ``race_datetime``, delay its start (raise ValueError if that moves it
    further than lifecycle.START_MOVE_MAX). The same status and start time
    again change nothing. Placings come as a result (race_result_record), not as a bare status:
    a closed race becomes interim or official only with them; an interim one (or one under
    protest) becomes official with the placings it has.
    """
    race = _race_locked(race_id)
    _not_simulating_fed(race, actor.source)
    delay = race_datetime is not None and race_datetime != race.race_datetime
    if (
        delay
        and race_datetime is not None
        and (problem := lifecycle.start_time_problem(current=race.race_datetime, wanted=race_datetime, now=at))
    ):
        raise ValueError(problem)
    if status == race.status:
        if not delay:
            return Change.UNCHANGED
        if race.status not in lifecycle.TAKES_DELAYS:
            raise RaceClosedError(f"race {race_id} is {race.status}: its start time cannot change")
        _move(race, status, at=at, actor=actor, reason=reason, race_datetime=race_datetime)
        return Change.CHANGED
    lifecycle.transition_check(race.status, status)
    # Interim placings are posted as a result; once they are in (interim, or a protest heard),
    # official makes them the result as they stand, as a tote's "final" does.
    if status == Race.Status.INTERIM and race.status != Race.Status.PROTEST:
        raise RaceClosedError(f"a race becomes {status} with its placings: post them as a result")
    if status == Race.Status.OFFICIAL and race.status not in (Race.Status.INTERIM, Race.Status.PROTEST):
        raise RaceClosedError(f"a race becomes {status} with its placings: post them as a result")
    if delay and race.status not in lifecycle.TAKES_DELAYS:
        raise RaceClosedError(f"race {race_id} is {race.status}: its start time cannot change")
    if status == Race.Status.OFFICIAL:  # stewards satisfied, or a protest dismissed: the placings stand
        _make_official(race, at=at, actor=actor, reason=reason, race_datetime=race_datetime)
        return Change.CHANGED
    _move(race, status, at=at, actor=actor, reason=reason, race_datetime=race_datetime)
    return Change.CHANGED


def _make_official(
    race: Race, *, at: dt.datetime, actor: Actor, reason: str = "", race_datetime: dt.datetime | None = None
) -> None:
    """Declare the race's interim placings, as they stand, its official result."""
    placings = _placings_of(race.pk)
    _move(race, Race.Status.OFFICIAL, at=at, actor=actor, reason=reason, race_datetime=race_datetime)
    _declare(race, placings, at)


@transaction.atomic
def race_start_delay(
    *,
    race_id: int,
    at: dt.datetime,
    actor: Actor,
    reason: str = "",
    race_datetime: dt.datetime | None = None,
    by: dt.timedelta | None = None,
) -> Change:
    """
    Move a race's start to ``race_datetime``, or ``by`` from the start it has, keeping its status
    as it stands under the race's lock (race_status_change says what it refuses). Raise ValueError
    unless exactly one of the two is given, or for a move ``by`` of a race with no start time.
    """
    race = _race_locked(race_id)
    if (race_datetime is None) == (by is None):
        raise ValueError("give the new start time (race_datetime) or how far it moves (by), one of them")
    if by is not None:
        if race.race_datetime is None:
            raise ValueError(f"race {race_id} has no start time to move: give it one")
        try:
            race_datetime = race.race_datetime + by
        except OverflowError:
            raise ValueError(f"a start time moves at most {lifecycle.START_MOVE_MAX.days} days") from None
    return race_status_change(
        race_id=race_id, status=race.status, at=at, actor=actor, reason=reason, race_datetime=race_datetime
    )


# --- Odds ---------------------------------------------------------------------------------------


@transaction.atomic
def odds_snapshot_record(
    *,
    race_id: int,
    odds: Sequence[tuple[int, float]],
    source: str,
    taken_at: dt.datetime,
    market_elapsed_s: float | None = None,
) -> OddsSnapshot:
    """Keep a published market (opening it, for a scheduled race), mark the race fed if a feed
    published it, then announce it."""
    race = _race_locked(race_id)
    if race.status not in lifecycle.TAKES_ODDS:
        raise RaceClosedError(f"race {race_id} is {race.status}: its market is closed")
    _not_simulating_fed(race, source)
    scratched = set(Starter.objects.filter(race_id=race_id, scratched=True).values_list("horse_id", flat=True))
    if priced := sorted(scratched & {horse_id for horse_id, _ in odds}):
        raise ValueError(f"horse {', '.join(map(str, priced))} is scratched: it has no odds")
    if race.status == Race.Status.SCHEDULED:
        _move(race, Race.Status.OPEN, at=taken_at, actor=Actor(source))
    rows = [{"horse_id": horse_id, "odds": price} for horse_id, price in odds]
    snapshot = OddsSnapshot.objects.create(
        race_id=race_id, taken_at=taken_at, source=source, odds=rows, market_elapsed_s=market_elapsed_s
    )
    _log(race, kind=RaceUpdate.Kind.ODDS, at=taken_at, data=rows)
    if source == OddsSnapshot.Source.FEED and not race.fed:
        Race.objects.filter(pk=race_id).update(fed=True)
    return snapshot


# --- Results ------------------------------------------------------------------------------------


def _result_rows(placings: Mapping[int, int | None]) -> list[dict[str, Any]]:
    return [
        {"horse_id": horse_id, "placing": placing, "finished": placing is not None}
        for horse_id, placing in result_in_order(dict(placings))
    ]


def _placings_of(race_id: int) -> dict[int, int | None]:
    return {
        s.horse_id: None if s.did_not_finish else s.placing
        for s in Starter.objects.filter(race_id=race_id, scratched=False).only("horse_id", "placing", "did_not_finish")
    }


def _declare(race: Race, placings: Mapping[int, int | None], at: dt.datetime) -> None:
    """Log the race's official result as its next update (its status is official)."""
    _log(race, kind=RaceUpdate.Kind.RESULT, at=at, data=_result_rows(placings))
    Race.objects.filter(pk=race.pk).update(result_declared_at=at)


@transaction.atomic
def race_result_record(
    *,
    race_id: int,
    placings: Mapping[int, int | None],
    declared_at: dt.datetime,
    source: str,
    correction: bool = False,
    official: bool = True,
    user: Any = None,
) -> ResultChange:
    """
    Store a race's result, interim or official, and announce it: ``placings`` maps every starter
    that ran (scratched ones left out) to its placing, or None for one that did not finish; dead
    heats share a placing. A race still scheduled or open is closed first. A different official
    result for an official race is stored only as an explicit ``correction``; the same result
    again changes nothing.
    """
    race = _race_locked(race_id)
    actor = Actor(source, user)
    _not_simulating_fed(race, source)
    if race.status == Race.Status.ABANDONED:
        raise RaceClosedError(f"race {race_id} is abandoned: it has no result")
    if not official and race.status == Race.Status.OFFICIAL:
        raise RaceClosedError(f"race {race_id} is official: its result is no longer interim")
    starters = list(Starter.objects.select_for_update().filter(race_id=race_id))
    runners = {starter.horse_id for starter in starters if not starter.scratched}
    if set(placings) != runners:
        raise ValueError(f"placings must name exactly the race's runners {sorted(runners)}")
    if problems := placings_problems(placings):
        raise ValueError("; ".join(problems))
    current = {s.horse_id: None if s.did_not_finish else s.placing for s in starters if not s.scratched}
    has_placings = race.status in lifecycle.HAS_PLACINGS
    change = ResultChange.DECLARED
    if race.status == Race.Status.OFFICIAL:
        if current == dict(placings):
            return ResultChange.UNCHANGED
        if not correction:
            raise ResultConflictError(current)
        change = ResultChange.CORRECTED
    elif not official and race.status == Race.Status.INTERIM and current == dict(placings):
        return ResultChange.UNCHANGED
    for starter in starters:
        if not starter.scratched:
            starter.placing = placings[starter.horse_id]
            starter.did_not_finish = starter.placing is None
    Starter.objects.bulk_update(starters, ["placing", "did_not_finish"])
    if source == OddsSnapshot.Source.FEED and not race.fed:
        Race.objects.filter(pk=race_id).update(fed=True)
    if official:
        if race.status != Race.Status.OFFICIAL:
            if not has_placings:  # still scheduled or open: the race was run, so it closed
                _move_to(race, Race.Status.CLOSED, at=declared_at, actor=actor)
            _move(race, Race.Status.OFFICIAL, at=declared_at, actor=actor)
        _declare(race, placings, declared_at)
    else:
        if race.status != Race.Status.INTERIM:
            _move_to(race, Race.Status.INTERIM, at=declared_at, actor=actor)
        _log(race, kind=RaceUpdate.Kind.INTERIM, at=declared_at, data=_result_rows(placings))
    return change


@transaction.atomic
def race_result_make_official(*, race_id: int, at: dt.datetime, actor: Actor, reason: str = "") -> Change:
    """
    Make a race's interim placings its official result as they stand: the stewards are satisfied
    (from interim) or dismissed a protest (from protest, as race_status_change does). An official
    race again changes nothing. Raise RaceClosedError for a closed race (its placings are not in:
    post them as a result) and TransitionError for any other status.
    """
    race = _race_locked(race_id)
    if race.status == Race.Status.OFFICIAL:
        return Change.UNCHANGED
    if race.status == Race.Status.CLOSED:
        raise RaceClosedError(f"race {race_id} is closed: its placings are not in yet; enter them as its result")
    if race.status not in (Race.Status.INTERIM, Race.Status.PROTEST):
        raise TransitionError(race.status, Race.Status.OFFICIAL)
    _make_official(race, at=at, actor=actor, reason=reason)
    return Change.CHANGED


@transaction.atomic
def race_result_declare_entered(*, race_id: int, declared_at: dt.datetime, user: Any = None) -> bool:
    """
    Declare the result the race office has just entered on the race's starters (in the admin) as
    official. Return whether a result is now declared (False: no placing was entered). An
    official result cannot be withdrawn, only corrected: raise RaceClosedError if its placings
    were all cleared.
    """
    race = _race_locked(race_id)
    placings = _placings_of(race_id)
    entered = any(
        s.placing is not None or s.did_not_finish for s in Starter.objects.filter(race_id=race_id, scratched=False)
    )
    if not entered:
        if race.status == Race.Status.OFFICIAL:
            raise RaceClosedError(f"race {race_id} is official: its result can be corrected, not withdrawn")
        return False
    actor = Actor(Source.ADMIN, user)
    if race.status == Race.Status.ABANDONED:
        raise RaceClosedError(f"race {race_id} is abandoned: it has no result")
    if race.status != Race.Status.OFFICIAL:
        if race.status not in lifecycle.HAS_PLACINGS:
            _move_to(race, Race.Status.CLOSED, at=declared_at, actor=actor)
        _move(race, Race.Status.OFFICIAL, at=declared_at, actor=actor)
    _declare(race, placings, declared_at)
    return True


# --- The field ----------------------------------------------------------------------------------


def _starter_locked(race: Race, horse_id: int) -> Starter:
    try:
        return (
            Starter.objects.select_for_update(of=("self",))
            .select_related("driver")
            .get(race_id=race.pk, horse_id=horse_id)
        )
    except Starter.DoesNotExist:
        raise ValueError(f"horse {horse_id} is not a starter in race {race.pk}") from None


def _announce_starter(
    race: Race, starter: Starter, change: str, *, at: dt.datetime, actor: Actor, driver_before: Driver | None = None
) -> None:
    card = starter_card_get(starter_id=starter.pk)
    seq = _log(race, kind=RaceUpdate.Kind.STARTER, at=at, data={"change": change, "starter": card})
    StarterChange.objects.create(
        starter=starter, seq=seq, change=change, driver_before=driver_before, driver_after=starter.driver,
        source=actor.source, user=actor.user, changed_at=at,
    )  # fmt: skip


@transaction.atomic
def starter_scratch(*, race_id: int, horse_id: int, at: dt.datetime, actor: Actor) -> Change:
    """Withdraw a starter from the race (a late scratching once its market is up)."""
    race = _race_locked(race_id)
    _not_simulating_fed(race, actor.source)
    starter = _starter_locked(race, horse_id)
    if starter.scratched:
        return Change.UNCHANGED
    if race.status not in lifecycle.TAKES_SCRATCHINGS:
        raise RaceClosedError(f"race {race_id} is {race.status}: too late to scratch a starter")
    if Starter.objects.filter(race_id=race_id, scratched=False).count() <= 1:
        raise RaceClosedError(f"horse {horse_id} is race {race_id}'s last runner: abandon the race instead")
    starter.scratched, starter.scratched_late = True, race.status == Race.Status.OPEN
    starter.save(update_fields=["scratched", "scratched_late"])
    _announce_starter(race, starter, StarterChange.Change.SCRATCHED, at=at, actor=actor)
    return Change.CHANGED


@transaction.atomic
def starter_reinstate(*, race_id: int, horse_id: int, at: dt.datetime, actor: Actor) -> Change:
    """Undo a scratching, before the race's market opens."""
    race = _race_locked(race_id)
    _not_simulating_fed(race, actor.source)
    starter = _starter_locked(race, horse_id)
    if not starter.scratched:
        return Change.UNCHANGED
    if race.status not in lifecycle.TAKES_REINSTATEMENTS:
        raise RaceClosedError(f"race {race_id} is {race.status}: a scratching stands once the market is up")
    starter.scratched, starter.scratched_late = False, False
    starter.save(update_fields=["scratched", "scratched_late"])
    _announce_starter(race, starter, StarterChange.Change.REINSTATED, at=at, actor=actor)
    return Change.CHANGED


def driver_by_name(name: str) -> Driver:
    """Return the driver of that name (trimmed, case ignored), created if new."""
    name = " ".join(name.split())
    found = Driver.objects.annotate(key=Lower(Trim("name"))).filter(key=name.lower()).first()
    return found or Driver.objects.create(name=name)


@transaction.atomic
def starter_driver_change(
    *, race_id: int, horse_id: int, driver_name: str | None = None, driver_id: int | None = None,
    at: dt.datetime, actor: Actor,
) -> Change:  # fmt: skip
    """Give a starter a new driver, named (found, or created if new) or by id."""
    race = _race_locked(race_id)
    _not_simulating_fed(race, actor.source)
    starter = _starter_locked(race, horse_id)
    if driver_id is not None:
        try:
            driver = Driver.objects.get(pk=driver_id)
        except Driver.DoesNotExist:
            raise ValueError(f"there is no driver {driver_id}") from None
    elif driver_name and driver_name.strip():
        driver = driver_by_name(driver_name)
    else:
        raise ValueError("name the new driver (driver_name) or give their id (driver_id)")
    if starter.driver_id == driver.pk:
        return Change.UNCHANGED
    if race.status not in lifecycle.TAKES_DRIVER_CHANGES:
        raise RaceClosedError(f"race {race_id} is {race.status}: too late to change a driver")
    if starter.scratched:
        raise RaceClosedError(f"horse {horse_id} is scratched: it has no driver to change")
    before = starter.driver
    starter.driver = driver
    starter.save(update_fields=["driver"])
    _announce_starter(race, starter, StarterChange.Change.DRIVER_CHANGED, at=at, actor=actor, driver_before=before)
    return Change.CHANGED


# --- Reset --------------------------------------------------------------------------------------


def _simulated_driver_changes_undo(race_id: int) -> None:
    """Give each starter back the driver the simulation took the reins from, unless the race office
    or a feed changed its driver since (theirs stands)."""
    changes = StarterChange.objects.filter(
        starter__race_id=race_id, change=StarterChange.Change.DRIVER_CHANGED
    ).order_by("starter_id", "-changed_at", "-pk")
    for starter_id, newest_first in groupby(changes, key=lambda change: change.starter_id):
        simulated = list(takewhile(lambda change: change.source == Source.SIMULATION, newest_first))
        if simulated:
            Starter.objects.filter(pk=starter_id).update(driver_id=simulated[-1].driver_before_id)
            StarterChange.objects.filter(pk__in=[change.pk for change in simulated]).delete()


@transaction.atomic
def race_reset(*, race_id: int) -> None:
    """Clear a race's result, scratchings, odds history and feed mark, so that its market can run
    again. Its updates are numbered afresh under a new epoch: a client's old seq cannot resume
    into them. Driver changes the race office or a feed made stay; the simulation's are undone
    (it makes them again if it plans them), so that a seeded simulation runs the same day again."""
    _race_locked(race_id)
    _simulated_driver_changes_undo(race_id)
    Starter.objects.filter(race_id=race_id).update(
        placing=None, did_not_finish=False, scratched=False, scratched_late=False
    )
    OddsSnapshot.objects.filter(race_id=race_id).delete()
    RaceUpdate.objects.filter(race_id=race_id).delete()
    # The history of the run being discarded goes with it (its seqs number the old epoch).
    RaceStatusChange.objects.filter(race_id=race_id).delete()
    StarterChange.objects.filter(starter__race_id=race_id).exclude(change=StarterChange.Change.DRIVER_CHANGED).delete()
    Race.objects.filter(pk=race_id).update(
        status=Race.Status.SCHEDULED,
        result_declared_at=None,
        fed=False,
        update_seq=0,
        updates_epoch=new_updates_epoch(),
    )
