"""Writes of the racing domain: odds snapshots, results and resets, each in one transaction."""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Mapping, Sequence
from functools import partial

from django.db import transaction

from races import events
from races.models import OddsSnapshot, Race, RaceUpdate, Starter, new_updates_epoch
from races.selectors import result_in_order


class RaceClosedError(Exception):
    """The race does not accept this write: finished, or fed when the writer is a simulation."""


class ResultConflictError(Exception):
    """A different result is already declared, and the request did not say it corrects it."""

    def __init__(self, declared: Mapping[int, int | None]) -> None:
        super().__init__("a different result is already declared for this race")
        self.declared = dict(declared)


class ResultChange(enum.Enum):
    DECLARED = "declared"
    CORRECTED = "corrected"
    UNCHANGED = "unchanged"


def placings_problems(placings: Mapping[int, int | None]) -> list[str]:
    """Return what is wrong with a result: finishers' placings must run 1..k, once each."""
    finishers = sorted(placing for placing in placings.values() if placing is not None)
    if not finishers:
        return ["at least one starter must finish"]
    if finishers != list(range(1, len(finishers) + 1)):
        return [
            f"finishers' placings must be 1 to {len(finishers)} without gaps or duplicates, "
            f"not {', '.join(map(str, finishers))}"
        ]
    return []


def _race_locked(race_id: int) -> Race:
    # The row lock orders concurrent writers of one race: a feed's first write and a
    # simulation's next one cannot interleave.
    return Race.objects.select_for_update().only("status", "fed", "update_seq", "updates_epoch").get(pk=race_id)


def _race_update_append(*, race: Race, kind: str, published_at: dt.datetime, data: list[dict]) -> int:
    """Number the race's next update and log it (the caller holds the race's row lock, so the
    numbers are gap-free and in commit order); return its seq."""
    seq = race.update_seq + 1
    RaceUpdate.objects.create(race_id=race.pk, seq=seq, kind=kind, published_at=published_at, data=data)
    race.update_seq = seq
    return seq


@transaction.atomic
def odds_snapshot_record(
    *,
    race_id: int,
    odds: Sequence[tuple[int, float]],
    source: str,
    taken_at: dt.datetime,
    market_elapsed_s: float | None = None,
) -> OddsSnapshot:
    """Keep a published market, mark the race live (and fed, for a feed), then announce it."""
    race = _race_locked(race_id)
    if race.status == Race.Status.FINISHED:
        raise RaceClosedError(f"race {race_id} is finished: its market is closed")
    if source == OddsSnapshot.Source.SIMULATION and race.fed:
        raise RaceClosedError(f"race {race_id} is fed by a live feed: it is not simulated")
    rows = [{"horse_id": horse_id, "odds": price} for horse_id, price in odds]
    snapshot = OddsSnapshot.objects.create(
        race_id=race_id, taken_at=taken_at, source=source, odds=rows, market_elapsed_s=market_elapsed_s
    )
    seq = _race_update_append(race=race, kind=RaceUpdate.Kind.ODDS, published_at=taken_at, data=rows)
    fed = race.fed or source == OddsSnapshot.Source.FEED
    Race.objects.filter(pk=race_id).update(status=Race.Status.LIVE, fed=fed, update_seq=seq)
    _on_commit(
        partial(
            events.odds_recorded.send,
            sender=OddsSnapshot,
            race_id=race_id,
            epoch=race.updates_epoch,
            seq=seq,
            odds=list(odds),
            taken_at=taken_at,
        )
    )
    return snapshot


@transaction.atomic
def race_result_record(
    *,
    race_id: int,
    placings: Mapping[int, int | None],
    declared_at: dt.datetime,
    source: str,
    correction: bool = False,
) -> ResultChange:
    """
    Store a race's result and announce it: ``placings`` maps every starter's horse id to its
    placing, or None for a starter that did not finish. A different result for a finished race
    is stored only as an explicit ``correction``; the same result again changes nothing.
    """
    race = _race_locked(race_id)
    if source == OddsSnapshot.Source.SIMULATION and (race.fed or race.status == Race.Status.FINISHED):
        raise RaceClosedError(f"race {race_id} is fed or finished: it is not simulated")
    starters = list(Starter.objects.select_for_update().filter(race_id=race_id))
    horse_ids = {starter.horse_id for starter in starters}
    if set(placings) != horse_ids:
        raise ValueError(f"placings must name exactly the race's horses {sorted(horse_ids)}")
    if problems := placings_problems(placings):
        raise ValueError("; ".join(problems))
    change = ResultChange.DECLARED
    if race.status == Race.Status.FINISHED:
        declared = {s.horse_id: None if s.did_not_finish else s.placing for s in starters}
        if declared == dict(placings):
            return ResultChange.UNCHANGED
        if not correction:
            raise ResultConflictError(declared)
        change = ResultChange.CORRECTED
    for starter in starters:
        starter.placing = placings[starter.horse_id]
        starter.did_not_finish = starter.placing is None
    Starter.objects.bulk_update(starters, ["placing", "did_not_finish"])
    _declare(race, dict(placings), declared_at, fed=race.fed or source == OddsSnapshot.Source.FEED)
    return change


@transaction.atomic
def race_result_declare_entered(*, race_id: int, declared_at: dt.datetime) -> bool:
    """
    Declare the result the race office has just entered on the race's starters (in the admin),
    or withdraw it if every placing was cleared. Return whether a result is now declared.
    """
    race = _race_locked(race_id)
    starters = list(Starter.objects.select_for_update().filter(race_id=race_id))
    placings = {s.horse_id: None if s.did_not_finish else s.placing for s in starters}
    entered = any(s.placing is not None or s.did_not_finish for s in starters)
    if not entered:
        has_odds = OddsSnapshot.objects.filter(race_id=race_id).exists()
        Race.objects.filter(pk=race_id, status=Race.Status.FINISHED).update(
            status=Race.Status.LIVE if has_odds else Race.Status.SCHEDULED, result_declared_at=None
        )
        return False
    _declare(race, placings, declared_at, fed=race.fed)
    return True


def _declare(race: Race, placings: dict[int, int | None], declared_at: dt.datetime, *, fed: bool) -> None:
    """Mark the race finished, log its result as its next update, and announce it."""
    results = [
        {"horse_id": horse_id, "placing": placing, "finished": placing is not None}
        for horse_id, placing in result_in_order(placings)
    ]
    seq = _race_update_append(race=race, kind=RaceUpdate.Kind.RESULT, published_at=declared_at, data=results)
    Race.objects.filter(pk=race.pk).update(
        status=Race.Status.FINISHED, result_declared_at=declared_at, fed=fed, update_seq=seq
    )
    _on_commit(
        partial(
            events.result_declared.send,
            sender=Race,
            race_id=race.pk,
            epoch=race.updates_epoch,
            seq=seq,
            results=results,
            declared_at=declared_at,
        )
    )


def _on_commit(send: partial) -> None:
    """Announce once the transaction commits; a failing listener is logged, never undoes the write."""

    def announce() -> None:
        send()

    # A named function, not the partial itself: Django's robust on_commit names the callback
    # in its log line with __qualname__, which a partial lacks (the request then failed).
    transaction.on_commit(announce, robust=True)


@transaction.atomic
def race_reset(*, race_id: int) -> None:
    """Clear a race's result, odds history and feed mark, so its market can run again. Its
    updates are numbered afresh under a new epoch: a client's old seq cannot resume into them."""
    _race_locked(race_id)
    Starter.objects.filter(race_id=race_id).update(placing=None, did_not_finish=False)
    OddsSnapshot.objects.filter(race_id=race_id).delete()
    RaceUpdate.objects.filter(race_id=race_id).delete()
    Race.objects.filter(pk=race_id).update(
        status=Race.Status.SCHEDULED,
        result_declared_at=None,
        fed=False,
        update_seq=0,
        updates_epoch=new_updates_epoch(),
    )
