"""Reads of the racing domain, shaped for the live protocol and the API alike."""

from __future__ import annotations

import datetime as dt
from typing import TypedDict

from dataclasses import dataclass

from django.db.models import F, JSONField, OuterRef, Prefetch, Subquery

from races.models import Meeting, OddsSnapshot, Race, RaceUpdate, Starter


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
    placing: int | None
    did_not_finish: bool


class HorseOddsRow(TypedDict):
    horse_id: int
    odds: float


class RaceUpdateRow(TypedDict):
    """One numbered update of a race as it was published (races.models.RaceUpdate)."""

    seq: int
    kind: str  # RaceUpdate.Kind: "odds" or "result"
    published_at: dt.datetime
    data: list[dict]


class RaceMarketStatus(TypedDict):
    """Where the race's market stands: what a client joining now must be sent after the card."""

    status: str
    fed: bool
    result_declared_at: dt.datetime | None
    updates_epoch: str
    # The newest update: the latest odds, or the result once declared (None before any).
    latest_update: RaceUpdateRow | None


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
)


def race_card_get(*, race_id: int) -> RaceCard | None:
    """
    Return the race with its meeting and starters (in runner-number order), or None.

    Always two queries, whatever the number of starters: values() rows, no model instances,
    because this runs on every WebSocket connect.
    """
    latest_update = RaceUpdate.objects.filter(race=OuterRef("pk"), seq=OuterRef("update_seq"))
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
            latest_kind=Subquery(latest_update.values("kind")[:1]),
            latest_published_at=Subquery(latest_update.values("published_at")[:1]),
            latest_data=Subquery(latest_update.values("data")[:1], output_field=JSONField()),
        )
        .first()
    )
    if race_row is None:
        return None
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
    }
    starter_rows = (
        Starter.objects.filter(race_id=race_id)
        .order_by(F("runner_number").asc(nulls_last=True), "pk")
        .values(
            *_STARTER_FIELDS,
            horse_name=F("horse__name"),
            driver_name=F("driver__name"),
            trainer_name=F("trainer__name"),
        )
    )
    starters: list[RaceCardStarter] = [
        {
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
            "placing": row["placing"],
            "did_not_finish": row["did_not_finish"],
        }
        for row in starter_rows
    ]
    market: RaceMarketStatus = {
        "status": race_row["status"],
        "fed": race_row["fed"],
        "result_declared_at": race_row["result_declared_at"],
        "updates_epoch": race_row["updates_epoch"],
        "latest_update": None
        if race_row["latest_kind"] is None
        else {
            "seq": race_row["update_seq"],
            "kind": race_row["latest_kind"],
            "published_at": race_row["latest_published_at"],
            "data": race_row["latest_data"],
        },
    }
    return {"race": race, "name": race_row["name"], "starters": starters, "market": market}


def race_updates_after(*, race_id: int, after_seq: int, limit: int) -> list[RaceUpdateRow]:
    """Return the race's updates numbered above ``after_seq``, oldest first, at most ``limit``
    (one query)."""
    return list(
        RaceUpdate.objects.filter(race_id=race_id, seq__gt=after_seq)
        .order_by("seq")
        .values("seq", "kind", "published_at", "data")[:limit]
    )


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
        for horse_id, barrier, handicap_m in Starter.objects.filter(race_id=race_id)
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
    number order and each finished race's winner as ``winner_name`` (two queries).
    """
    winner = (
        Starter.objects.filter(race=OuterRef("pk"), placing=1, did_not_finish=False)
        .order_by(F("runner_number").asc(nulls_last=True))
        .values("horse__name")[:1]
    )
    races = Race.objects.order_by("race_number").annotate(winner_name=Subquery(winner))
    meetings = Meeting.objects.filter(date__gte=first_date)
    if last_date is not None:
        meetings = meetings.filter(date__lte=last_date)
    return list(meetings.order_by("date", "code").prefetch_related(Prefetch("races", queryset=races)))


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


def race_result_get(*, race_id: int) -> tuple[dt.datetime, list[tuple[int, int | None]]] | None:
    """Return when the race's result was declared and the result in order, or None (2 queries)."""
    race = Race.objects.filter(pk=race_id, status=Race.Status.FINISHED).values("result_declared_at").first()
    if race is None or race["result_declared_at"] is None:
        return None
    placings = {
        horse_id: None if did_not_finish else placing
        for horse_id, placing, did_not_finish in Starter.objects.filter(race_id=race_id)
        .order_by(F("runner_number").asc(nulls_last=True), "pk")
        .values_list("horse_id", "placing", "did_not_finish")
    }
    return race["result_declared_at"], result_in_order(placings)
