"""
The race card import: a file's rows made the meetings', races' and starters' own, all or nothing.

What a row changes depends on its race's status (races.lifecycle):
- scheduled (or new): any edit is made as it is; a runner left out of the file leaves the field;
  a scratched runner back in the file is reinstated (races.services.starter_reinstate);
- open (the market is up): a new driver and a runner left out go through the same services as the
  race office's own driver change and scratching (recorded, numbered, sent to clients), a new
  start time through race_start_delay; the race's name, weather and track condition may change;
  anything else (a new runner, a new barrier, a new distance) is refused;
- closed and after: nothing may change; the same card again is fine.

Horses, drivers and trainers are matched by name (trimmed, case ignored) and created when new. A
file's reads are a fixed number of queries however many rows it has; its writes are bulk, but for
the late changes, each its service's.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

import tablib
from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models.functions import Lower, Trim
from django.utils import timezone

from races import lifecycle
from races.models import Driver, Horse, Meeting, Race, Starter, Trainer
from races.racecard.rows import CardRow, RowError, card_rows_parse
from races.services import (
    Actor,
    RaceClosedError,
    TransitionError,
    race_start_delay,
    starter_driver_change,
    starter_reinstate,
    starter_scratch,
)

__all__ = ["ImportReport", "racecard_import"]

REASON = "race card import"
# Race fields the file gives, as (column, model field).
RACE_FIELDS = (
    ("race_name", "name"),
    ("distance_m", "distance_m"),
    ("gait", "gait"),
    ("start_type", "start_type"),
    ("start_time", "race_datetime"),
    ("track_condition", "track_condition"),
    ("weather", "weather"),
)
# What may still change once a race's market is up, as an ordinary edit (the start time moves as a
# delay, through its service).
OPEN_RACE_EDITS = ("name", "track_condition", "weather")
STARTER_FIELDS = ("runner_number", "barrier", "handicap_m")


@dataclass
class ImportReport:
    """What an import did (or, a dry run, would do): rows created, updated and unchanged, runners
    removed, a line per change, or why the file is refused (then nothing changed)."""

    dry_run: bool
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    removed: int = 0
    errors: list[RowError] = field(default_factory=list)
    changes: list[str] = field(default_factory=list)

    @property
    def refused(self) -> int:
        """Return how many rows are refused (the file as a whole counts as one)."""
        return len({error.row for error in self.errors})

    def summary(self) -> str:
        """Return the counts in a line, and whether anything was saved."""
        counts = (
            f"{self.created} created, {self.updated} updated, {self.unchanged} unchanged, "
            f"{self.removed} removed, {self.refused} refused"
        )
        if self.errors:
            return f"{counts}: the file is refused, nothing changed"
        return f"{counts} (a dry run: nothing saved)" if self.dry_run else counts


def _name(value: str | None) -> str | None:
    return " ".join(value.split()) if value else None


def _key(value: str | None) -> str | None:
    # SQL's LOWER, as the database matches it (not casefold: "ß" stays "ß").
    name = _name(value)
    return name.lower() if name else None


def _race_label(meeting_code: str, race_number: int) -> str:
    return f"{meeting_code} R{race_number}"


@dataclass
class _Plan:
    """What the file changes, worked out from the database as it stands, before any write."""

    report: ImportReport
    names: dict[Any, dict[str, Any]] = field(default_factory=dict)  # model -> key -> record or new name
    meetings: dict[str, Meeting] = field(default_factory=dict)  # by code, found or new
    races: dict[tuple[str, int], Race] = field(default_factory=dict)  # by (code, number), found or new
    new_meetings: list[Meeting] = field(default_factory=list)
    changed_meetings: list[Meeting] = field(default_factory=list)
    new_races: dict[tuple[str, int], Race] = field(default_factory=dict)
    changed_races: list[Race] = field(default_factory=list)
    delays: list[tuple[Race, dt.datetime]] = field(default_factory=list)
    new_starters: list[tuple[tuple[str, int], CardRow]] = field(default_factory=list)
    changed_starters: list[tuple[Starter, CardRow]] = field(default_factory=list)
    deleted_starters: list[Starter] = field(default_factory=list)
    scratchings: list[Starter] = field(default_factory=list)
    reinstatements: list[Starter] = field(default_factory=list)
    driver_changes: list[tuple[Starter, str]] = field(default_factory=list)

    def refuse(self, row: int, column: str, message: str) -> None:
        self.report.errors.append(RowError(row, column, message))

    def change(self, line: str) -> None:
        self.report.changes.append(line)


def racecard_import(
    *, dataset: tablib.Dataset, actor: Actor, dry_run: bool, at: dt.datetime | None = None
) -> ImportReport:
    """
    Import a race card (a Dataset under its header, one row per starter): check every row, then
    make its changes in one transaction, or none if any row is refused. ``dry_run`` only says what
    the file would change. The same file again changes nothing.
    """
    at = at or timezone.now()
    rows, errors = card_rows_parse(headers=dataset.headers or [], rows=dataset, tz=ZoneInfo(settings.TIME_ZONE))
    report = ImportReport(dry_run=dry_run, errors=errors)
    if errors:
        return report
    if dry_run:
        _plan(rows, report, lock=False)
        if report.errors:
            report.changes.clear()
        return report
    try:
        with transaction.atomic():
            plan = _plan(rows, report, lock=True)
            if not report.errors:
                _apply(plan, actor=actor, at=at)
    except (RaceClosedError, TransitionError, ValueError, IntegrityError) as refused:
        report.errors.append(RowError(0, "", f"refused while saving, nothing changed: {refused}"))
    if report.errors:
        report.changes.clear()
        report.created = report.updated = report.unchanged = report.removed = 0
    return report


# --- Working out the changes --------------------------------------------------------------------


def _plan(rows: Sequence[CardRow], report: ImportReport, *, lock: bool) -> _Plan:
    plan = _Plan(report)
    codes = sorted({row.meeting_code for row in rows})
    meetings = {meeting.code: meeting for meeting in Meeting.objects.filter(code__in=codes)}
    races_query = Race.objects.filter(meeting__code__in=codes).select_related("meeting")
    if lock:  # held until the import commits: the race office's and a feed's writes wait
        races_query = races_query.select_for_update(of=("self",))
    races = {(race.meeting.code, race.race_number): race for race in races_query}
    starters: dict[int, list[Starter]] = defaultdict(list)
    for starter in Starter.objects.filter(race__meeting__code__in=codes).select_related("horse", "driver", "trainer"):
        starters[starter.race_id].append(starter)
    _names_match(plan, rows)

    by_race: dict[tuple[str, int], list[CardRow]] = defaultdict(list)
    for row in rows:
        by_race[row.race_key].append(row)
    plan.meetings, plan.races = meetings, races
    for code in codes:
        first = next(row for row in rows if row.meeting_code == code)
        _meeting_plan(plan, meetings.get(code), first)
    for key, race_rows in by_race.items():
        race = races.get(key)
        if race is None:
            _new_race_plan(plan, race_rows)
        else:
            changed = _race_plan(plan, race, race_rows[0])
            _field_plan(plan, race, starters[race.pk], race_rows, race_changed=changed)
    return plan


def _names_match(plan: _Plan, rows: Sequence[CardRow]) -> None:
    """Find the file's horses, drivers and trainers by name; note the new ones."""
    for model, column in ((Horse, "horse"), (Driver, "driver"), (Trainer, "trainer")):
        wanted: dict[str, str] = {}
        for row in rows:
            if name := _name(getattr(row, column)):
                wanted.setdefault(name.lower(), name)
        found = model.objects.annotate(key=Lower(Trim("name"))).filter(key__in=list(wanted))
        known: dict[str, Any] = {record.key: record for record in found}
        plan.names[model] = {key: known.get(key, name) for key, name in wanted.items()}


def _meeting_plan(plan: _Plan, meeting: Meeting | None, row: CardRow) -> None:
    if meeting is None:
        plan.meetings[row.meeting_code] = Meeting(code=row.meeting_code, venue=row.venue, date=row.date)
        plan.new_meetings.append(plan.meetings[row.meeting_code])
        plan.change(f"{row.meeting_code}: new meeting at {row.venue or 'no venue'} on {row.date.isoformat()}")
        return
    edits = {name: getattr(row, name) for name in ("venue", "date") if getattr(meeting, name) != getattr(row, name)}
    if edits:
        for name, value in edits.items():
            plan.change(f"{meeting.code}: {name} {getattr(meeting, name)} → {value}")
            setattr(meeting, name, value)
        plan.changed_meetings.append(meeting)


def _new_race_plan(plan: _Plan, rows: list[CardRow]) -> None:
    first = rows[0]
    race = Race(
        meeting=plan.meetings[first.meeting_code], race_number=first.race_number,
        **{model_field: getattr(first, column) for column, model_field in RACE_FIELDS},
    )  # fmt: skip
    plan.new_races[first.race_key] = plan.races[first.race_key] = race
    plan.change(f"{_race_label(*first.race_key)}: new race, {len(rows)} starters")
    for row in rows:
        plan.new_starters.append((first.race_key, row))
        plan.report.created += 1


def _shown(value: Any) -> str:
    if isinstance(value, dt.datetime):
        return timezone.localtime(value).isoformat()
    return "(empty)" if value in (None, "") else str(value)


def _race_plan(plan: _Plan, race: Race, row: CardRow) -> bool:
    """Plan the race's own edits; return whether it has any."""
    label = _race_label(*row.race_key)
    edits = {
        model_field: getattr(row, column)
        for column, model_field in RACE_FIELDS
        if getattr(race, model_field) != getattr(row, column)
    }
    if not edits:
        return False
    if race.status not in lifecycle.TO_GO or (
        race.status == Race.Status.OPEN and set(edits) - {*OPEN_RACE_EDITS, "race_datetime"}
    ):
        refused = sorted(
            set(edits) - ({*OPEN_RACE_EDITS, "race_datetime"} if race.status == Race.Status.OPEN else set())
        )
        column = dict((model_field, column) for column, model_field in RACE_FIELDS)[refused[0]]
        when = "its market is open" if race.status == Race.Status.OPEN else f"it is {race.status}"
        plan.refuse(row.row, column, f"{label}: {', '.join(refused)} cannot change, {when}")
        return True
    for model_field, value in edits.items():
        late = (
            " (a delay, sent to clients)" if model_field == "race_datetime" and race.status == Race.Status.OPEN else ""
        )
        plan.change(f"{label}: {model_field} {_shown(getattr(race, model_field))} → {_shown(value)}{late}")
    if race.status == Race.Status.OPEN and "race_datetime" in edits:
        start = edits.pop("race_datetime")
        if start is None:
            plan.refuse(row.row, "start_time", f"{label}: its market is open, its start time cannot be cleared")
            return True
        plan.delays.append((race, start))
    for model_field, value in edits.items():
        setattr(race, model_field, value)
    if edits:
        plan.changed_races.append(race)
    return True


def _field_plan(plan: _Plan, race: Race, starters: list[Starter], rows: list[CardRow], *, race_changed: bool) -> None:
    """Plan the race's field: its starters as the file gives them, matched by horse."""
    label = _race_label(race.meeting.code, race.race_number)
    status = race.status
    is_open, to_go = status == Race.Status.OPEN, status in lifecycle.TO_GO
    by_horse = {_key(starter.horse.name): starter for starter in starters}
    in_file = set()
    for row in rows:
        key = _key(row.horse)
        in_file.add(key)
        starter = by_horse.get(key)
        if starter is None:
            if status != Race.Status.SCHEDULED:
                plan.refuse(row.row, "horse", f"{label}: {row.horse} cannot join the field, the race is {status}")
                continue
            plan.new_starters.append(((race.meeting.code, race.race_number), row))
            plan.change(f"{label}: new runner {row.runner_number or ''} {row.horse}".replace("  ", " "))
            plan.report.created += 1
            continue
        edits = {name: getattr(row, name) for name in STARTER_FIELDS if getattr(starter, name) != getattr(row, name)}
        trainer = _key(row.trainer)
        if trainer != _key(starter.trainer.name if starter.trainer else None):
            edits["trainer"] = row.trainer
        driver_changed = _key(row.driver) != _key(starter.driver.name if starter.driver else None)
        who = f"{label} {starter.horse.name}"
        if starter.scratched:
            if status != Race.Status.SCHEDULED:
                plan.refuse(row.row, "horse", f"{who} is scratched: a scratching stands once the market is up")
                continue
            plan.reinstatements.append(starter)
            plan.change(f"{who}: reinstated")
        if not to_go and (edits or driver_changed):
            plan.refuse(row.row, next(iter(edits), "driver"), f"{who} cannot change, the race is {status}")
            continue
        if is_open and (refused := [name for name in edits if name != "trainer"]):
            plan.refuse(row.row, refused[0], f"{who}: {', '.join(refused)} cannot change, its market is open")
            continue
        for name, value in edits.items():
            before = getattr(starter, name)
            plan.change(
                f"{who}: {name} {_shown(before.name if name == 'trainer' and before else before)} → {_shown(value)}"
            )
        if driver_changed:
            before = starter.driver.name if starter.driver else None
            if is_open:
                if not row.driver:
                    plan.refuse(row.row, "driver", f"{who}: its market is open, the driver cannot be left empty")
                    continue
                plan.driver_changes.append((starter, row.driver))
                plan.change(f"{who}: driver {_shown(before)} → {row.driver} (a driver change, sent to clients)")
            else:
                edits["driver"] = row.driver
                plan.change(f"{who}: driver {_shown(before)} → {_shown(row.driver)}")
        if edits:
            plan.changed_starters.append((starter, row))
        if edits or driver_changed or starter.scratched or race_changed:
            plan.report.updated += 1
        else:
            plan.report.unchanged += 1
    for key, starter in by_horse.items():
        if key in in_file or starter.scratched:
            continue
        who = f"{label} {starter.horse.name}"
        if status == Race.Status.SCHEDULED:
            plan.deleted_starters.append(starter)
            plan.change(f"{who}: leaves the field")
        elif is_open:
            plan.scratchings.append(starter)
            plan.change(f"{who}: scratched (a late scratching, sent to clients)")
        else:
            plan.refuse(rows[0].row, "horse", f"{who} is not in the file, but the race is {status}: its field stands")
            continue
        plan.report.removed += 1


# --- Making them --------------------------------------------------------------------------------


def _apply(plan: _Plan, *, actor: Actor, at: dt.datetime) -> None:
    records: dict[Any, dict[str, Any]] = {}
    for model, by_key in plan.names.items():
        new = {key: model(name=name) for key, name in by_key.items() if isinstance(name, str)}
        model.objects.bulk_create(new.values())
        records[model] = {**by_key, **new}

    def record(model: Any, name: str | None) -> Any:
        key = _key(name)
        return records[model][key] if key else None

    # Unsaved meetings, races and records given to the rows below take their ids as they are saved.
    Meeting.objects.bulk_create(plan.new_meetings)
    Meeting.objects.bulk_update(plan.changed_meetings, ["venue", "date"])
    Race.objects.bulk_create(plan.new_races.values())
    Race.objects.bulk_update(plan.changed_races, [model_field for _, model_field in RACE_FIELDS])

    Starter.objects.filter(pk__in=[starter.pk for starter in plan.deleted_starters]).delete()
    for starter in plan.reinstatements:
        starter_reinstate(race_id=starter.race_id, horse_id=starter.horse_id, at=at, actor=actor)
        starter.scratched = starter.scratched_late = False
    # Runner numbers are unique in a race: those that move let go of theirs first, so that two
    # runners may swap.
    renumbered = [starter.pk for starter, row in plan.changed_starters if starter.runner_number != row.runner_number]
    Starter.objects.filter(pk__in=renumbered).update(runner_number=None)
    for starter, row in plan.changed_starters:
        starter.runner_number, starter.barrier, starter.handicap_m = row.runner_number, row.barrier, row.handicap_m
        starter.trainer = record(Trainer, row.trainer)
        if not any(starter is changing for changing, _ in plan.driver_changes):
            starter.driver = record(Driver, row.driver)
    Starter.objects.bulk_update(
        [starter for starter, _ in plan.changed_starters], [*STARTER_FIELDS, "trainer", "driver"]
    )
    Starter.objects.bulk_create(
        Starter(
            race=plan.races[key],
            horse=record(Horse, row.horse),
            driver=record(Driver, row.driver),
            trainer=record(Trainer, row.trainer),
            runner_number=row.runner_number,
            barrier=row.barrier,
            handicap_m=row.handicap_m,
        )  # fmt: skip
        for key, row in plan.new_starters
    )
    for race, start in plan.delays:
        race_start_delay(race_id=race.pk, race_datetime=start, at=at, actor=actor, reason=REASON)
    for starter, driver in plan.driver_changes:
        starter_driver_change(
            race_id=starter.race_id, horse_id=starter.horse_id, driver_id=record(Driver, driver).pk, at=at, actor=actor
        )
    for starter in plan.scratchings:
        starter_scratch(race_id=starter.race_id, horse_id=starter.horse_id, at=at, actor=actor)
