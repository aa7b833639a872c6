"""Reads of the racing domain, shaped for the live protocol and the API alike."""

from __future__ import annotations

import datetime as dt
import math
from collections import defaultdict
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any, TypedDict

from django.db.models import Exists, F, JSONField, OuterRef, Prefetch, QuerySet, Subquery

from races import lifecycle
from races.models import Meeting, OddsSnapshot, Race, RaceStatusChange, RaceUpdate, Starter, StarterChange


class RaceCardRace(TypedDict):
    id: int
    meeting_id: str
    race_number: int
    distance_m: int
    start_type: str | None
    gait: str | None
    weather: str | None
    track_condition: str | None
    race_datetime: dt.datetime | None
    venue: str | None
    meeting_date: dt.date | None
    status: str  # races.lifecycle: scheduled, open, closed, interim, protest, official, abandoned


class RaceCardStarter(TypedDict):
    id: int
    horse_id: int
    horse_name: str | None
    driver_id: int | None
    driver_name: str | None
    trainer_id: int | None
    trainer_name: str | None
    runner_number: int | None
    barrier: int | None
    handicap_m: int | None
    placing: int | None  # the official placing: None until the result is official
    did_not_finish: bool
    scratched: bool


class HorseOddsRow(TypedDict):
    horse_id: int
    odds: float


class RaceUpdateRow(TypedDict):
    """One numbered update of a race as it was published (races.models.RaceUpdate)."""

    seq: int
    kind: str  # RaceUpdate.Kind: odds, status, starter, interim, result
    published_at: dt.datetime
    data: Any


class RaceMarketStatus(TypedDict):
    """Where the race's market stands: what a client joining now must be sent after the card."""

    status: str
    fed: bool
    result_declared_at: dt.datetime | None
    updates_epoch: str
    update_seq: int  # the newest update's number: the card reflects every update up to it
    # What a joiner is sent after the card: the market's latest odds (while it has a market to
    # show), and the latest interim or official result (while placings are in).
    latest_odds: RaceUpdateRow | None
    latest_result: RaceUpdateRow | None


class RaceCard(TypedDict):
    race: RaceCardRace
    name: str  # the race's name: not in the protocol's race object, but every page shows it
    starters: list[RaceCardStarter]
    market: RaceMarketStatus


_RACE_FIELDS = (
    "id",
    "race_number",
    "distance_m",
    "start_type",
    "gait",
    "weather",
    "track_condition",
    "race_datetime",
)

_STARTER_FIELDS = (
    "id",
    "horse_id",
    "driver_id",
    "trainer_id",
    "runner_number",
    "barrier",
    "handicap_m",
    "placing",
    "did_not_finish",
    "scratched",
)


def _latest(kinds: tuple[str, ...]) -> Any:
    return RaceUpdate.objects.filter(race=OuterRef("pk"), kind__in=kinds).order_by("-seq")


def _starter_card(row: dict[str, Any], *, official: bool) -> RaceCardStarter:
    return {
        "id": row["id"],
        "horse_id": row["horse_id"],
        "horse_name": row["horse_name"],
        "driver_id": row["driver_id"],
        "driver_name": row["driver_name"],
        "trainer_id": row["trainer_id"],
        "trainer_name": row["trainer_name"],
        "runner_number": row["runner_number"],
        "barrier": row["barrier"],
        "handicap_m": row["handicap_m"],
        # The spec's placing is the final one: interim placings go out as interim_result.
        "placing": row["placing"] if official else None,
        "did_not_finish": row["did_not_finish"] if official else False,
        "scratched": row["scratched"],
    }


def _starter_rows(**filters: Any) -> Any:
    return (
        Starter.objects.filter(**filters)
        .order_by(F("runner_number").asc(nulls_last=True), "pk")
        .values(
            *_STARTER_FIELDS,
            horse_name=F("horse__name"),
            driver_name=F("driver__name"),
            trainer_name=F("trainer__name"),
        )
    )


def race_card_get(*, race_id: int) -> RaceCard | None:
    """
    Return the race with its meeting and starters (in runner-number order), or None.

    Always two queries, whatever the number of starters: values() rows, no model instances,
    because this runs on every WebSocket connect.
    """
    odds = _latest((RaceUpdate.Kind.ODDS,))
    result = _latest((RaceUpdate.Kind.INTERIM, RaceUpdate.Kind.RESULT))
    race_row = (
        Race.objects.filter(pk=race_id)
        .values(
            *_RACE_FIELDS,
            "name",
            "status",
            "fed",
            "result_declared_at",
            "update_seq",
            "updates_epoch",
            code=F("meeting__code"),
            venue=F("meeting__venue"),
            date=F("meeting__date"),
            odds_seq=Subquery(odds.values("seq")[:1]),
            odds_published_at=Subquery(odds.values("published_at")[:1]),
            odds_data=Subquery(odds.values("data")[:1], output_field=JSONField()),
            result_seq=Subquery(result.values("seq")[:1]),
            result_kind=Subquery(result.values("kind")[:1]),
            result_published_at=Subquery(result.values("published_at")[:1]),
            result_data=Subquery(result.values("data")[:1], output_field=JSONField()),
        )
        .first()
    )
    if race_row is None:
        return None
    status = race_row["status"]
    race: RaceCardRace = {
        "id": race_row["id"],
        "meeting_id": race_row["code"],
        "race_number": race_row["race_number"],
        "distance_m": race_row["distance_m"],
        "start_type": race_row["start_type"],
        "gait": race_row["gait"],
        "weather": race_row["weather"],
        "track_condition": race_row["track_condition"],
        "race_datetime": race_row["race_datetime"],
        "venue": race_row["venue"],
        "meeting_date": race_row["date"],
        "status": status,
    }
    official = status == Race.Status.OFFICIAL
    starters = [_starter_card(row, official=official) for row in _starter_rows(race_id=race_id)]
    shows_result = status in lifecycle.HAS_PLACINGS and race_row["result_seq"] is not None
    market: RaceMarketStatus = {
        "status": status,
        "fed": race_row["fed"],
        "result_declared_at": race_row["result_declared_at"],
        "updates_epoch": race_row["updates_epoch"],
        "update_seq": race_row["update_seq"],
        "latest_odds": None
        if race_row["odds_seq"] is None or status == Race.Status.ABANDONED
        else {
            "seq": race_row["odds_seq"],
            "kind": RaceUpdate.Kind.ODDS,
            "published_at": race_row["odds_published_at"],
            "data": race_row["odds_data"],
        },
        "latest_result": None
        if not shows_result
        else {
            "seq": race_row["result_seq"],
            "kind": race_row["result_kind"],
            "published_at": race_row["result_published_at"],
            "data": race_row["result_data"],
        },
    }
    return {"race": race, "name": race_row["name"], "starters": starters, "market": market}


def starter_card_get(*, starter_id: int) -> RaceCardStarter:
    """Return one starter as the race card shows it (its placing only once official; one query)."""
    row = _starter_rows(pk=starter_id).annotate(race_status=F("race__status")).get()
    return _starter_card(row, official=row["race_status"] == Race.Status.OFFICIAL)


def race_updates_after(*, race_id: int, after_seq: int, limit: int) -> list[RaceUpdateRow]:
    """Return the race's updates numbered above ``after_seq``, oldest first, at most ``limit``
    (one query)."""
    return list(
        RaceUpdate.objects.filter(race_id=race_id, seq__gt=after_seq)
        .order_by("seq")
        .values("seq", "kind", "published_at", "data")[:limit]
    )


def race_updates_between(*, race_id: int, first_seq: int, last_seq: int | None, limit: int) -> list[RaceUpdateRow]:
    """Return the race's updates numbered ``first_seq``..``last_seq`` (inclusive), oldest first;
    with ``last_seq`` None, those from ``first_seq`` on, at most ``limit`` (one query)."""
    updates = RaceUpdate.objects.filter(race_id=race_id, seq__gte=first_seq)
    if last_seq is not None:
        updates, limit = updates.filter(seq__lte=last_seq), last_seq - first_seq + 1
    return list(updates.order_by("seq").values("seq", "kind", "published_at", "data")[:limit])


@dataclass(frozen=True, slots=True)
class StarterPosition:
    horse_id: int
    barrier: int | None
    handicap_m: int | None


@dataclass(frozen=True, slots=True)
class RaceMarketState:
    """What a market simulation needs to open a race's market, or to resume it."""

    race_id: int
    status: str
    fed: bool
    start_type: str | None
    positions: list[StarterPosition]
    last_simulated_odds: list[HorseOddsRow] | None
    last_simulated_elapsed_s: float | None


def race_market_state_get(*, race_id: int) -> RaceMarketState | None:
    """Return the race's starting positions and its last simulated market, or None (3 queries)."""
    race = Race.objects.filter(pk=race_id).values("status", "fed", "start_type").first()
    if race is None:
        return None
    positions = [
        StarterPosition(horse_id=horse_id, barrier=barrier, handicap_m=handicap_m)
        for horse_id, barrier, handicap_m in Starter.objects.filter(race_id=race_id, scratched=False)
        .order_by(F("runner_number").asc(nulls_last=True), "pk")
        .values_list("horse_id", "barrier", "handicap_m")
    ]
    snapshot = (
        OddsSnapshot.objects.filter(race_id=race_id, source=OddsSnapshot.Source.SIMULATION)
        .order_by("-taken_at", "-pk")
        .values("odds", "market_elapsed_s")
        .first()
    )
    return RaceMarketState(
        race_id=race_id,
        status=race["status"],
        fed=race["fed"],
        start_type=race["start_type"],
        positions=positions,
        last_simulated_odds=snapshot["odds"] if snapshot else None,
        last_simulated_elapsed_s=snapshot["market_elapsed_s"] if snapshot else None,
    )


def race_day_meetings(*, first_date: dt.date, last_date: dt.date | None = None) -> list[Meeting]:
    """
    Return the meetings from ``first_date`` (to ``last_date``, if given), each with its races in
    number order; each race with ``delayed`` (its start time was changed) and, once official, its
    winners as ``winners`` (starters with their horse, in runner order: more than one after a dead
    heat for first). Three queries, however many races.
    """
    delays = RaceStatusChange.objects.filter(race=OuterRef("pk"), status=F("previous"))
    # Interim placings are stored on the starters too: only an official result has a winner.
    winners = (
        Starter.objects.filter(placing=1, did_not_finish=False, scratched=False, race__status=Race.Status.OFFICIAL)
        .select_related("horse")
        .order_by(F("runner_number").asc(nulls_last=True), "pk")
    )
    races = Race.objects.order_by("race_number").annotate(delayed=Exists(delays))
    meetings = Meeting.objects.filter(date__gte=first_date)
    if last_date is not None:
        meetings = meetings.filter(date__lte=last_date)
    return list(
        meetings.order_by("date", "code").prefetch_related(
            Prefetch("races", queryset=races), Prefetch("races__starters", queryset=winners, to_attr="winners")
        )
    )


class RaceFavourite(TypedDict):
    """The market's favourite: the runner at the shortest price (the lowest runner number on a tie)."""

    runner_number: int | None
    horse_id: int
    horse_name: str
    odds: float  # decimal win odds, as the latest snapshot has them


class RaceWinner(TypedDict):
    """A starter placed first in the official result."""

    runner_number: int | None
    horse_id: int
    horse_name: str


class RaceSummary(TypedDict):
    """A race at a glance, for lists of races (next to go, a meeting's board): what it is, when it
    starts, where it stands, its favourite and, once official, its winners."""

    id: int
    meeting_id: str  # the meeting's code, e.g. NZ_20261204_ADD
    venue: str | None
    race_number: int
    name: str  # "" for a race with no name
    race_datetime: dt.datetime | None  # the start time (the latest, after a delay)
    status: str  # races.lifecycle: scheduled, open, closed, interim, protest, official, abandoned
    # From the race's latest odds snapshot, scratched runners left out; None before the market is
    # up, and for an abandoned race (its odds stop, as the race card's do).
    favourite: RaceFavourite | None
    # Once official, the starters placed first, in runner order: two or more after a dead heat.
    # None while the result is not official (interim placings can still change).
    winners: list[RaceWinner] | None


class NextToGoRace(RaceSummary):
    seconds_to_start: int  # whole seconds from now to the start time: negative once overdue


# The most races next to go lists: a tote's screen shows a dozen, and this bounds one request.
NEXT_TO_GO_LIMIT_MAX = 50


def race_summaries_get(
    *,
    race_ids: Collection[int] | None = None,
    meeting_ids: Collection[str] | None = None,
    date: dt.date | None = None,
) -> list[RaceSummary]:
    """
    Return the summaries of the races that match every filter given (``meeting_ids`` are meeting
    codes, ``date`` a meeting date), in start order: start time (races without one last), then
    meeting code, then race number. Two queries, however many races and starters.
    """
    races = _races_matching(race_ids=race_ids, meeting_ids=meeting_ids, date=date)
    return _race_summaries(races.order_by(F("race_datetime").asc(nulls_last=True), "meeting__code", "race_number"))


def race_ids_get(*, meeting_ids: Collection[str] | None = None, date: dt.date | None = None) -> list[int]:
    """Return the ids of the races that match every filter given, as race_summaries_get reads
    them, without their summaries. One query."""
    return list(_races_matching(meeting_ids=meeting_ids, date=date).order_by("pk").values_list("pk", flat=True))


def _races_matching(
    *, race_ids: Collection[int] | None = None, meeting_ids: Collection[str] | None = None, date: dt.date | None = None
) -> QuerySet[Race]:
    races = Race.objects.all()
    if race_ids is not None:
        races = races.filter(pk__in=race_ids)
    if meeting_ids is not None:
        races = races.filter(meeting__code__in=meeting_ids)
    if date is not None:
        races = races.filter(meeting__date=date)
    return races


def races_next_to_go(*, now: dt.datetime, limit: int) -> list[NextToGoRace]:
    """
    Return the next ``limit`` races to start across all meetings: those not yet closed (scheduled
    or open, a delayed race at its new time, an overdue one until it closes) that have a start
    time, by start time, then meeting code, then race number; each with its seconds to ``now``.
    Two queries, however many races and starters.
    """
    to_go = Race.objects.filter(status__in=lifecycle.TO_GO, race_datetime__isnull=False)
    races = to_go.order_by("race_datetime", "meeting__code", "race_number")[:limit]
    return [
        NextToGoRace(**summary, seconds_to_start=_seconds_between(now, summary["race_datetime"]))
        for summary in _race_summaries(races)
    ]


def _seconds_between(now: dt.datetime, start: dt.datetime | None) -> int:
    # Floored, so that a race is at 0 or more until its start and negative from the moment after.
    assert start is not None, "next to go lists only races with a start time"
    return math.floor((start - now).total_seconds())


def _race_summaries(races: QuerySet[Race]) -> list[RaceSummary]:
    latest_odds = OddsSnapshot.objects.filter(race=OuterRef("pk")).order_by("-taken_at", "-pk")
    rows = list(
        races.values(
            "id",
            "race_number",
            "name",
            "race_datetime",
            "status",
            code=F("meeting__code"),
            venue=F("meeting__venue"),
            odds=Subquery(latest_odds.values("odds")[:1], output_field=JSONField()),
        )
    )
    if not rows:
        return []
    # Scratched starters are neither in the market nor in the result: only runners are read.
    runners: dict[int, list[Mapping[str, Any]]] = defaultdict(list)
    for runner in (
        Starter.objects.filter(race_id__in=[row["id"] for row in rows], scratched=False)
        .order_by(F("runner_number").asc(nulls_last=True), "pk")
        .values("race_id", "horse_id", "runner_number", "placing", "did_not_finish", horse_name=F("horse__name"))
    ):
        runners[runner["race_id"]].append(runner)
    return [_race_summary(row, runners[row["id"]]) for row in rows]


def _race_summary(row: Mapping[str, Any], runners: list[Mapping[str, Any]]) -> RaceSummary:
    status = row["status"]
    favourite: RaceFavourite | None = None
    if row["odds"] is not None and status != Race.Status.ABANDONED:
        prices = {entry["horse_id"]: float(entry["odds"]) for entry in row["odds"]}
        priced = [runner for runner in runners if runner["horse_id"] in prices]  # in runner order
        if priced:
            best = min(priced, key=lambda runner: prices[runner["horse_id"]])  # the first of equals
            favourite = {
                "runner_number": best["runner_number"],
                "horse_id": best["horse_id"],
                "horse_name": best["horse_name"],
                "odds": prices[best["horse_id"]],
            }
    winners: list[RaceWinner] | None = None
    if status == Race.Status.OFFICIAL:
        winners = [
            {"runner_number": r["runner_number"], "horse_id": r["horse_id"], "horse_name": r["horse_name"]}
            for r in runners
            if r["placing"] == 1 and not r["did_not_finish"]
        ]
    return {
        "id": row["id"],
        "meeting_id": row["code"],
        "venue": row["venue"],
        "race_number": row["race_number"],
        "name": row["name"],
        "race_datetime": row["race_datetime"],
        "status": status,
        "favourite": favourite,
        "winners": winners,
    }


def meeting_dates_around(*, day: dt.date) -> tuple[dt.date | None, dt.date | None]:
    """Return the nearest meeting dates before and after ``day`` (for previous/next links)."""
    before = Meeting.objects.filter(date__lt=day).order_by("-date").values_list("date", flat=True).first()
    after = Meeting.objects.filter(date__gt=day).order_by("date").values_list("date", flat=True).first()
    return before, after


def result_in_order(placings: dict[int, int | None]) -> list[tuple[int, int | None]]:
    """Return (horse id, placing) pairs as a result is read: finishers by placing, then the
    starters that did not finish (placing None), each group in a stable order."""
    finishers = sorted((placing, horse_id) for horse_id, placing in placings.items() if placing is not None)
    did_not_finish = [horse_id for horse_id, placing in placings.items() if placing is None]
    return [(horse_id, placing) for placing, horse_id in finishers] + [(h, None) for h in did_not_finish]


@dataclass(frozen=True, slots=True)
class RaceResult:
    status: str  # interim, protest or official
    declared_at: dt.datetime  # when these placings went out
    result: list[tuple[int, int | None]]  # (horse id, placing) as a result is read


def race_result_get(*, race_id: int) -> RaceResult | None:
    """Return the race's latest result, interim or official, or None if it has none (2 queries)."""
    race = (
        Race.objects.filter(pk=race_id, status__in=lifecycle.HAS_PLACINGS)
        .values(
            "status",
            declared_at=Subquery(_latest((RaceUpdate.Kind.INTERIM, RaceUpdate.Kind.RESULT)).values("published_at")[:1]),
        )
        .first()
    )
    if race is None or race["declared_at"] is None:
        return None
    placings = {
        horse_id: None if did_not_finish else placing
        for horse_id, placing, did_not_finish in Starter.objects.filter(race_id=race_id, scratched=False)
        .order_by(F("runner_number").asc(nulls_last=True), "pk")
        .values_list("horse_id", "placing", "did_not_finish")
    }
    return RaceResult(status=race["status"], declared_at=race["declared_at"], result=result_in_order(placings))


@dataclass(frozen=True, slots=True)
class RaceNotes:
    """What a race's page says beside its card, from the race's history of changes."""

    status_reason: str | None  # why the race moved to the status it is in, if anyone said
    delayed: bool  # its start time was changed since the race was drawn (or last reset)
    delay_reason: str | None  # why, for the latest change
    # horse id -> the driver the horse was drawn with (a name, or None for no driver), for each
    # starter now driven by someone else
    drawn_drivers: dict[int, str | None]


def race_notes_get(*, race_id: int) -> RaceNotes:
    """Return the race's notes: the reason for its status, its delay and its driver changes (two
    queries)."""
    status_reason, delayed, delay_reason = None, False, None
    for status, previous, reason in (
        RaceStatusChange.objects.filter(race_id=race_id).order_by("seq").values_list("status", "previous", "reason")
    ):
        if status == previous:
            delayed, delay_reason = True, reason or None
        else:
            status_reason = reason or None
    drawn: dict[int, tuple[int | None, str | None, int | None]] = {}
    # Driver changes outlive a reset (the race office made them), so they are ordered by time.
    for horse_id, before_id, before_name, current_id in (
        StarterChange.objects.filter(starter__race_id=race_id, change=StarterChange.Change.DRIVER_CHANGED)
        .order_by("changed_at", "pk")
        .values_list("starter__horse_id", "driver_before_id", "driver_before__name", "starter__driver_id")
    ):
        drawn.setdefault(horse_id, (before_id, before_name, current_id))
    return RaceNotes(
        status_reason=status_reason,
        delayed=delayed,
        delay_reason=delay_reason,
        drawn_drivers={h: name for h, (before, name, current) in drawn.items() if before != current},
    )


def meeting_exists(*, code: str) -> bool:
    """Return whether a meeting has this code (e.g. NZ_20261204_ADD)."""
    return "\x00" not in code and Meeting.objects.filter(code=code).exists()
