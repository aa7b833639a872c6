"""The race board in the browser: the race day, and a race page that follows the live protocol."""

from __future__ import annotations

import datetime as dt

from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.utils import timezone

from live.stats import live_process_stats
from races.selectors import meeting_dates_around, race_card_get, race_day_meetings, result_in_order
from races.serializers import race_card_data


def race_day(request: HttpRequest) -> HttpResponse:
    """Render today's and upcoming meetings, or one day's with ?date=YYYY-MM-DD."""
    today = timezone.localdate()
    day = _requested_date(request.GET.get("date"))
    if day is None:
        meetings = race_day_meetings(first_date=today)
        earlier, later = meeting_dates_around(day=today)
        later = None  # everything upcoming is on this page already
    else:
        meetings = race_day_meetings(first_date=day, last_date=day)
        earlier, later = meeting_dates_around(day=day)
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
        },
    )


def _requested_date(value: str | None) -> dt.date | None:
    if not value:
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        return None


def race_page(request: HttpRequest, race_id: int) -> HttpResponse:
    """Render a race's board; the page's script keeps it live over /ws/races/{race_id}."""
    card = race_card_get(race_id=race_id)
    if card is None:
        raise Http404(f"Race {race_id} does not exist.")
    data = race_card_data(card)
    runners_by_horse = {s["horse_id"]: s for s in card["starters"]}
    result = None
    if card["market"]["result_declared_at"] is not None:
        placings = {s["horse_id"]: None if s["did_not_finish"] else s["placing"] for s in card["starters"]}
        result = [(runners_by_horse[h], p) for h, p in result_in_order(placings)]
    return render(
        request,
        "live/race.html",
        {
            "race": card["race"],
            "race_name": card["name"],
            "starters": card["starters"],
            "status": card["market"]["status"],
            "result": result,
            "board_config": {
                "raceId": race_id,
                "socketPath": f"/ws/races/{race_id}",
                "oddsHistoryUrl": f"/api/races/{race_id}/odds/",
                "card": data,
            },
        },
    )


async def health(request: HttpRequest) -> JsonResponse:
    """This process's live state, for a load balancer's health check and for the soak run
    (bench/soak.py), which checks that connections, watched races, simulations and tasks all
    return to their baseline. Counts only: nothing about any client."""
    return JsonResponse({"status": "ok", **live_process_stats()})
