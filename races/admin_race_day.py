"""
The race office's view of the race day in the admin: at the top of a race's page, the race as it
stands (status, latest odds, what is due next) with its moves; and the race-day list, a day's
races across every meeting in start order, each with the next action due and a link to make it.
Both are read from the database through races.selectors, in a fixed number of queries. The race's
page is kept live by its script over the server's own /ws/live (as any client of the protocol),
which also brings the viewers; races imports nothing of live/.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from django import forms
from django.contrib.admin import ModelAdmin
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone

from races import lifecycle
from races.forms import STATUS_LABELS, status_label
from races.next_action import NextAction, next_action_due
from races.selectors import RaceCard, meeting_dates_around, race_card_get, race_summaries_get

# The path of the server's WebSocket for many races (docs/protocol.md): the race's page follows
# its race there while the market is up, and its meeting's summaries for the viewers.
LIVE_SOCKET_PATH = "/ws/live"


# --- A race's page --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RunnerOdds:
    """A starter as the race's odds board shows it."""

    horse_id: int
    runner_number: int | None
    horse_name: str
    odds: float | None  # in the latest odds; None before the market, once abandoned, or scratched
    favourite: bool
    scratched: bool


@dataclass(frozen=True, slots=True)
class RaceLiveState:
    """A race as it stands, for the top of its admin page."""

    race_id: int
    meeting_code: str
    status: str
    start: dt.datetime | None
    runners: list[RunnerOdds]
    odds_at: dt.datetime | None  # when the latest odds went out; None: no odds to show
    next_action: NextAction | None

    @property
    def status_label(self) -> str:
        return status_label(self.status)

    def script_config(self) -> dict[str, Any]:
        """Return what the page's script starts from (json_script)."""
        return {
            "raceId": self.race_id,
            "meetingId": self.meeting_code,
            "status": self.status,
            "socketPath": LIVE_SOCKET_PATH,
            "statusLabels": STATUS_LABELS,
            "timeZone": timezone.get_current_timezone_name(),
        }


def race_live_state_get(*, race_id: int, now: dt.datetime) -> RaceLiveState | None:
    """Return the race as it stands now, or None if there is no such race (two queries, however
    many starters)."""
    card = race_card_get(race_id=race_id)
    return None if card is None else race_live_state(card, now=now)


def race_live_state(card: RaceCard, *, now: dt.datetime) -> RaceLiveState:
    """Return a race card as the top of its admin page shows it."""
    latest = card["market"]["latest_odds"]  # None before the market, and once abandoned
    prices = {entry["horse_id"]: float(entry["odds"]) for entry in latest["data"]} if latest else {}
    # A runner scratched after the latest odds went out still has a price in them: it is no
    # longer in the market. The favourite is the shortest price, the lowest number of equals (as
    # races.selectors' summaries and the board's script choose it).
    priced = [s for s in card["starters"] if not s["scratched"] and s["horse_id"] in prices]
    favourite = min(priced, key=lambda s: prices[s["horse_id"]])["horse_id"] if priced else None
    runners = [
        RunnerOdds(
            horse_id=starter["horse_id"],
            runner_number=starter["runner_number"],
            horse_name=starter["horse_name"] or "",
            odds=None if starter["scratched"] else prices.get(starter["horse_id"]),
            favourite=starter["horse_id"] == favourite,
            scratched=starter["scratched"],
        )
        for starter in card["starters"]
    ]
    race, status = card["race"], card["market"]["status"]
    return RaceLiveState(
        race_id=race["id"],
        meeting_code=race["meeting_id"],
        status=status,
        start=race["race_datetime"],
        runners=runners,
        odds_at=latest["published_at"] if latest else None,
        next_action=next_action_due(status=status, start=race["race_datetime"], now=now),
    )


# --- The race-day list ----------------------------------------------------------------------------


class RaceDayForm(forms.Form):
    date = forms.DateField(
        required=False,
        input_formats=["%Y-%m-%d"],
        widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"),
        error_messages={"invalid": "“%(value)s” is not a date: give one as YYYY-MM-DD, e.g. 2026-12-04."},
    )


def race_day_urls(model_admin: ModelAdmin) -> list:
    """Return the race-day list's URL (before the model admin's own: its ``<id>/`` would take it)."""
    info = model_admin.opts.app_label, model_admin.opts.model_name
    return [
        path(
            "race-day/",
            model_admin.admin_site.admin_view(lambda request: race_day_view(model_admin, request)),
            name="{}_{}_race_day_list".format(*info),
        )
    ]


def race_day_view(model_admin: ModelAdmin, request: HttpRequest) -> TemplateResponse:
    """The day's races (today's in the project's time zone, or ``?date=``) across every meeting,
    in start order, each with its status and the next action due; a date that is not one is
    answered 400 with what was wrong. Four queries, however many races."""
    if not model_admin.has_view_or_change_permission(request):
        raise PermissionDenied
    form = RaceDayForm(request.GET)
    today = timezone.localdate()
    valid = form.is_valid()
    day = (form.cleaned_data.get("date") if valid else None) or today
    rows: list[dict[str, Any]] = []
    before = after = None
    now = timezone.now()
    if valid:
        may_change = model_admin.has_change_permission(request)
        site, opts = model_admin.admin_site.name, model_admin.opts
        for summary in race_summaries_get(date=day):
            due = next_action_due(status=summary["status"], start=summary["race_datetime"], now=now)
            race_url = reverse(f"{site}:{opts.app_label}_{opts.model_name}_change", args=[summary["id"]])
            action_url = None
            if due is not None and may_change and due.move:
                action_url = reverse(
                    f"{site}:{opts.app_label}_{opts.model_name}_race_day", args=[summary["id"], due.move]
                )
            elif due is not None and may_change:
                # On the race's page: placings on its starters, a protest decided with its moves.
                action_url = race_url + ("#starters-group" if summary["status"] == lifecycle.CLOSED else "")
            rows.append({
                "race": summary,
                "status_label": status_label(summary["status"]),
                "due": due,
                "action_url": action_url,
                "race_url": race_url,
            })  # fmt: skip
        before, after = meeting_dates_around(day=day)
    context = {
        **model_admin.admin_site.each_context(request),
        "title": f"Race day: {day:%A} {day.day} {day:%B %Y}",
        "opts": model_admin.opts,
        "form": form,
        "day": day,
        "today": today,
        "now": now,
        "rows": rows,
        "before": before,
        "after": after,
        "valid": valid,
    }
    request.current_app = model_admin.admin_site.name
    return TemplateResponse(request, "admin/races/race/race_day.html", context, status=200 if valid else 400)
