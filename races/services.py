"""Writes of the racing domain: odds snapshots, results and resets, each in one transaction."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence

from django.db import transaction

from races.models import OddsSnapshot, Race, Starter


@transaction.atomic
def odds_snapshot_record(
    *,
    race_id: int,
    odds: Sequence[tuple[int, float]],
    source: str,
    taken_at: dt.datetime,
    market_elapsed_s: float | None = None,
) -> OddsSnapshot:
    """Keep a published market and mark a scheduled race live (two queries)."""
    snapshot = OddsSnapshot.objects.create(
        race_id=race_id,
        taken_at=taken_at,
        source=source,
        odds=[{"horse_id": horse_id, "odds": price} for horse_id, price in odds],
        market_elapsed_s=market_elapsed_s,
    )
    Race.objects.filter(pk=race_id, status=Race.Status.SCHEDULED).update(status=Race.Status.LIVE)
    return snapshot


@transaction.atomic
def race_result_record(
    *, race_id: int, placings: Mapping[int, int | None], declared_at: dt.datetime
) -> None:
    """
    Store a race's result: ``placings`` maps every starter's horse id to its placing, or to None
    for a starter that did not finish; the race is marked finished. All or nothing.
    """
    starters = list(Starter.objects.select_for_update().filter(race_id=race_id))
    horse_ids = {starter.horse_id for starter in starters}
    if set(placings) != horse_ids:
        raise ValueError(f"placings must name exactly the race's horses {sorted(horse_ids)}")
    for starter in starters:
        starter.placing = placings[starter.horse_id]
        starter.did_not_finish = starter.placing is None
    Starter.objects.bulk_update(starters, ["placing", "did_not_finish"])
    Race.objects.filter(pk=race_id).update(
        status=Race.Status.FINISHED, result_declared_at=declared_at
    )


@transaction.atomic
def race_reset(*, race_id: int) -> None:
    """Clear a race's result and odds history, so its market can run again from the start."""
    Starter.objects.filter(race_id=race_id).update(placing=None, did_not_finish=False)
    OddsSnapshot.objects.filter(race_id=race_id).delete()
    Race.objects.filter(pk=race_id).update(status=Race.Status.SCHEDULED, result_declared_at=None)
