"""Reads for the exports: every row a file needs, in a fixed number of queries however many races,
starters or odds snapshots there are."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Collection
from dataclasses import dataclass

from django.db.models import F, OuterRef, Subquery

from races import lifecycle
from races.models import Horse, OddsSnapshot, Race, RaceUpdate, Starter


@dataclass(frozen=True, slots=True)
class ExportRace:
    """What names a race in a file: its meeting and number."""

    id: int
    meeting_code: str
    race_number: int
    name: str
    status: str
    # When its latest placings (interim or official) went out; None while it has none.
    declared_at: dt.datetime | None

    @property
    def has_result(self) -> bool:
        return self.status in lifecycle.HAS_PLACINGS and self.declared_at is not None


@dataclass(frozen=True, slots=True)
class ResultRow:
    """One starter of a race with a result: a placing, or why it has none."""

    race: ExportRace
    runner_number: int | None
    horse: str
    driver: str | None
    trainer: str | None
    placing: int | None  # None for a starter that did not finish or was scratched
    dead_heat: bool  # another starter shares its placing
    outcome: str  # one of OUTCOMES


# What became of a starter, in the results file.
PLACED, DID_NOT_FINISH, SCRATCHED = "placed", "did not finish", "scratched"
OUTCOMES = (PLACED, DID_NOT_FINISH, SCRATCHED)


@dataclass(frozen=True, slots=True)
class OddsRow:
    """One runner's price in one snapshot of a race's market."""

    race: ExportRace
    snapshot: int  # 1, 2, 3 ... in the order the race's snapshots were taken
    taken_at: dt.datetime
    source: str  # OddsSnapshot.Source
    runner_number: int | None
    horse: str
    odds: float


def export_races_get(*, race_ids: Collection[int]) -> list[ExportRace]:
    """Return the races with these ids that exist, in meeting and race order (one query)."""
    latest_placings = RaceUpdate.objects.filter(
        race=OuterRef("pk"), kind__in=(RaceUpdate.Kind.INTERIM, RaceUpdate.Kind.RESULT)
    ).order_by("-seq")
    rows = (
        Race.objects.filter(pk__in=race_ids)
        .order_by("meeting__date", "meeting__code", "race_number")
        .values_list(
            "id",
            "meeting__code",
            "race_number",
            "name",
            "status",
            Subquery(latest_placings.values("published_at")[:1]),
        )
    )
    return [ExportRace(*row) for row in rows]


def race_result_rows(*, races: Collection[ExportRace]) -> list[ResultRow]:
    """Return the starters of those of ``races`` that have a result (interim or official), race by
    race: finishers by placing (a dead heat's starters side by side, in runner order), then those
    that did not finish, then the scratched ones (one query)."""
    by_id = {race.id: race for race in races if race.has_result}
    if not by_id:
        return []
    starters = list(
        Starter.objects.filter(race_id__in=by_id)
        .order_by(F("runner_number").asc(nulls_last=True), "pk")
        .values_list(
            "race_id",
            "runner_number",
            "horse__name",
            "driver__name",
            "trainer__name",
            "placing",
            "did_not_finish",
            "scratched",
        )
    )
    sharing = Counter(
        (race_id, placing)
        for race_id, _, _, _, _, placing, did_not_finish, scratched in starters
        if placing is not None and not (did_not_finish or scratched)
    )
    rows = []
    for race_id, number, horse, driver, trainer, placing, did_not_finish, scratched in starters:
        outcome = SCRATCHED if scratched else DID_NOT_FINISH if did_not_finish or placing is None else PLACED
        placed = outcome == PLACED
        rows.append(
            ResultRow(
                race=by_id[race_id],
                runner_number=number,
                horse=horse,
                driver=driver,
                trainer=trainer,
                placing=placing if placed else None,
                dead_heat=placed and sharing[(race_id, placing or 0)] > 1,
                outcome=outcome,
            )
        )
    race_order = {race_id: index for index, race_id in enumerate(by_id)}
    outcome_order = {outcome: index for index, outcome in enumerate(OUTCOMES)}
    # sorted() is stable: within a placing, and among the others, runner order is kept.
    return sorted(rows, key=lambda row: (race_order[row.race.id], outcome_order[row.outcome], row.placing or 0))


def race_odds_rows(*, races: Collection[ExportRace]) -> list[OddsRow]:
    """Return every price of every odds snapshot of ``races``, race by race, snapshot by snapshot
    (oldest first), each snapshot's runners in the order they were published (two queries; a third
    only if a snapshot names a horse no longer among the race's starters)."""
    by_id = {race.id: race for race in races}
    if not by_id:
        return []
    runners: dict[tuple[int, int], tuple[int | None, str]] = {
        (race_id, horse_id): (number, name)
        for race_id, horse_id, number, name in Starter.objects.filter(race_id__in=by_id).values_list(
            "race_id", "horse_id", "runner_number", "horse__name"
        )
    }
    snapshots = list(
        OddsSnapshot.objects.filter(race_id__in=by_id)
        .order_by("race_id", "taken_at", "pk")
        .values_list("race_id", "taken_at", "source", "odds")
    )
    gone = {
        item["horse_id"]
        for race_id, _, _, odds in snapshots
        for item in odds
        if (race_id, item["horse_id"]) not in runners
    }
    gone_names = dict(Horse.objects.filter(pk__in=gone).values_list("pk", "name")) if gone else {}
    race_order = {race_id: index for index, race_id in enumerate(by_id)}
    snapshots.sort(key=lambda snapshot: race_order[snapshot[0]])  # stable: time order kept
    rows: list[OddsRow] = []
    numbering: dict[int, int] = {}
    for race_id, taken_at, source, odds in snapshots:
        numbering[race_id] = numbering.get(race_id, 0) + 1
        for item in odds:
            number, name = runners.get(
                (race_id, item["horse_id"]), (None, gone_names.get(item["horse_id"], f"horse {item['horse_id']}"))
            )
            rows.append(
                OddsRow(
                    race=by_id[race_id],
                    snapshot=numbering[race_id],
                    taken_at=taken_at,
                    source=source,
                    runner_number=number,
                    horse=name,
                    odds=item["odds"],
                )
            )
    return rows
