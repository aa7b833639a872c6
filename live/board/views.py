"""The race board in the browser: the race day, and a race page that follows the live protocol."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from pathlib import Path

from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.utils.cache import patch_cache_control

from live.board.labels import STATUS_LABELS
from races import lifecycle
from races.models import Meeting
from races.selectors import (
    NextToGoRace,
    RaceCard,
    RaceNotes,
    meeting_dates_around,
    race_card_get,
    race_day_meetings,
    race_notes_get,
    race_result_get,
    race_summaries_get,
    races_next_to_go,
    result_in_order,
)
from races.serializers import race_card_data, race_summary_data

FAVICON = Path(__file__).resolve().parent / "static" / "live" / "favicon.ico"
# Browsers ask for /favicon.ico on a first visit whatever the page links; a day keeps them from
# asking on every page while a new icon still shows by tomorrow.
FAVICON_MAX_AGE_S = 60 * 60 * 24
# The races next to go on the race day: as many as /api/next-to-go/ lists by default, about a
# tote screen's worth.
NEXT_TO_GO_ROWS = 10


def race_day(request: HttpRequest) -> HttpResponse:
    """Render today's and upcoming meetings with the races next to go, or one day's meetings with
    ?date=YYYY-MM-DD; the page's script keeps them live over /ws/live."""
    today = timezone.localdate()
    day = _requested_date(request.GET.get("date"))
    next_to_go: list[NextToGoRace] | None = None  # only today's page has them: they are about now
    if day is None:
        meetings = race_day_meetings(first_date=today)
        earlier, later = meeting_dates_around(day=today)
        later = None  # everything upcoming is on this page already
        next_to_go = races_next_to_go(now=timezone.now(), limit=NEXT_TO_GO_ROWS)
    else:
        meetings = race_day_meetings(first_date=day, last_date=day)
        earlier, later = meeting_dates_around(day=day)
    summaries = race_summaries_get(meeting_ids=[meeting.code for meeting in meetings]) if meetings else []
    return render(
        request,
        "live/race_day.html",
        {
            "meetings": meetings,
            "day": day,
            "today": today,
            "earlier": earlier,
            "later": later,
            "date_error": request.GET.get("date") if day is None and request.GET.get("date") else None,
            "next_to_go": next_to_go,
            "favourites": {summary["id"]: summary["favourite"] for summary in summaries},
            "day_config": {
                "subscriptions": _live_subscriptions(meetings=meetings, next_to_go=next_to_go or []),
                # A start time that changes from here on is a delay; these were delayed already.
                "delayed": [race.id for meeting in meetings for race in meeting.races.all() if race.delayed],
                "nextToGo": None if next_to_go is None else [race_summary_data(race) for race in next_to_go],
                "nextToGoRows": NEXT_TO_GO_ROWS,
                "statusLabels": STATUS_LABELS,
            },
        },
    )


def _live_subscriptions(*, meetings: list[Meeting], next_to_go: list[NextToGoRace]) -> list[dict[str, str]]:
    """Return what the race day's script subscribes to on /ws/live: the meeting of each race next
    to go that is not on the page (an overdue one from an earlier day), then each day of the page,
    one subscription for all its meetings; no more than a connection may hold."""
    on_page = {meeting.code for meeting in meetings}
    elsewhere = dict.fromkeys(race["meeting_id"] for race in next_to_go if race["meeting_id"] not in on_page)
    days = dict.fromkeys(meeting.date for meeting in meetings)
    subscriptions = [{"meeting_id": code} for code in elsewhere] + [{"date": day.isoformat()} for day in days]
    return subscriptions[: settings.WEBSOCKET_MAX_SUBSCRIPTIONS]


def _requested_date(value: str | None) -> dt.date | None:
    if not value:
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        return None


def race_page(request: HttpRequest, race_id: int) -> HttpResponse:
    """Render a race's board as it stands; the page's script keeps it live over /ws/live (the race's
    stream, and its meeting's summaries for the race's viewers)."""
    card = race_card_get(race_id=race_id)
    if card is None:
        raise Http404(f"Race {race_id} does not exist.")
    status = card["race"]["status"]
    notes = race_notes_get(race_id=race_id)
    result = _result_of(card)
    placings = dict(result or [])
    # A placing two finishers share is a dead heat (1, 1, 3).
    shared = {placing for placing, count in Counter(placings.values()).items() if placing is not None and count > 1}
    runners = [
        {
            "starter": starter,
            "placed": starter["horse_id"] in placings,
            "placing": placings.get(starter["horse_id"]),
            "dead_heat": placings.get(starter["horse_id"]) in shared,
            "driver_changed": starter["horse_id"] in notes.drawn_drivers,
            "drawn_driver": notes.drawn_drivers.get(starter["horse_id"]),
        }
        for starter in card["starters"]
    ]
    starters_by_horse = {s["horse_id"]: s for s in card["starters"]}
    return render(
        request,
        "live/race.html",
        {
            "race": card["race"],
            "race_name": card["name"],
            "status": status,
            "runners": runners,
            "result": [(starters_by_horse[h], p, p in shared) for h, p in result] if result else None,
            "official": status == lifecycle.OFFICIAL,
            # A delay matters until they are racing; after that the race's status says more.
            "delayed": notes.delayed and status in lifecycle.TAKES_DELAYS,
            "note": _race_note(status=status, notes=notes, starts_at=card["race"]["race_datetime"]),
            "board_config": {
                "raceId": race_id,
                "meetingId": card["race"]["meeting_id"],
                "socketPath": "/ws/live",
                "oddsHistoryUrl": f"/api/races/{race_id}/odds/",
                "card": race_card_data(card),
                "statusLabels": STATUS_LABELS,
                # What the card does not carry: the page shows it from the start, and the socket's
                # messages keep it up to date.
                "notes": {
                    "statusReason": notes.status_reason,
                    "delayed": notes.delayed,
                    "delayReason": notes.delay_reason,
                    "drawnDrivers": {str(h): name for h, name in notes.drawn_drivers.items()},
                },
                "result": None
                if result is None
                else {
                    "official": status == lifecycle.OFFICIAL,
                    "results": [{"horse_id": h, "placing": p, "finished": p is not None} for h, p in result],
                },
            },
        },
    )


def _race_note(*, status: str, notes: RaceNotes, starts_at: dt.datetime | None) -> str | None:
    """Return the line under the race's status that says what a fan must know now, if anything
    (race-board.js says the same in raceNote)."""
    if status == lifecycle.ABANDONED:
        return f"Abandoned{_reason(notes.status_reason)}. There is no result."
    if status == lifecycle.PROTEST:
        return f"Protest{_reason(notes.status_reason)}. The placings may change."
    if notes.delayed and status in lifecycle.TAKES_DELAYS and starts_at is not None:
        return f"Start delayed to {timezone.localtime(starts_at):%H:%M}{_reason(notes.delay_reason)}."
    return None


def _reason(reason: str | None) -> str:
    return f" – {reason.rstrip('.')}" if reason else ""


def _result_of(card: RaceCard) -> list[tuple[int, int | None]] | None:
    """Return the race's placings, interim or official, as a result is read; None if it has none."""
    status = card["race"]["status"]
    if status == lifecycle.OFFICIAL:
        # The card carries official placings (scratched starters have none: they did not run).
        runners = [s for s in card["starters"] if not s["scratched"]]
        if not any(s["placing"] is not None or s["did_not_finish"] for s in runners):
            return None
        return result_in_order({s["horse_id"]: None if s["did_not_finish"] else s["placing"] for s in runners})
    if status in lifecycle.HAS_PLACINGS:  # interim or protest: the card keeps those placings back
        declared = race_result_get(race_id=card["race"]["id"])
        return declared.result if declared is not None else None
    return None


def favicon(request: HttpRequest) -> HttpResponse:
    """Serve the site's icon at /favicon.ico, where browsers and feed readers look for it."""
    response = HttpResponse(FAVICON.read_bytes(), content_type="image/x-icon")
    patch_cache_control(response, public=True, max_age=FAVICON_MAX_AGE_S)
    return response
