"""
What the race office must do next for a race, as the admin's race-day view and a race's page say
it: open the market, close it at the start, enter the placings, declare them official, decide a
protest. Pure: no ORM, no I/O; the status and the clock come in as arguments.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from races import lifecycle


@dataclass(frozen=True, slots=True)
class NextAction:
    """The office's next move for a race."""

    text: str  # as the office reads it: "Close at start (in 4 min)"
    # The admin's race-day move that does it (a key of races.admin.RACE_MOVES), or None when it is
    # done on the race's own page (placings are entered on its starters).
    move: str | None
    overdue: bool = False  # the race's start has come and the move is still to be made


def next_action_due(*, status: str, start: dt.datetime | None, now: dt.datetime) -> NextAction | None:
    """Return what the office must do next for a race that is ``status`` and starts at ``start``
    (None: no start time yet), at ``now``; None once its day is over (official or abandoned)."""
    overdue = start is not None and now >= start
    if status == lifecycle.SCHEDULED:
        if overdue:
            return NextAction("Overdue: open the market (or close)", "open", overdue=True)
        return NextAction("Open the market", "open")
    if status == lifecycle.OPEN:
        if start is None:
            return NextAction("Close at start", "close")
        if overdue:
            return NextAction("Overdue: close", "close", overdue=True)
        return NextAction(f"Close at start ({time_to_go(start - now)})", "close")
    if status == lifecycle.CLOSED:
        return NextAction("Enter interim placings", None)
    if status == lifecycle.INTERIM:
        return NextAction("Declare official (or protest)", "official")
    if status == lifecycle.PROTEST:
        # Dismissed: declared official as it stands; upheld: new placings on the race's page.
        return NextAction("Decide the protest", None)
    return None


def time_to_go(span: dt.timedelta) -> str:
    """Return a time still to go, to the minute: "in under a minute", "in 4 min", "in 1 h 05 min"."""
    minutes = int(span.total_seconds()) // 60  # whole minutes: 4 min 59 s is "in 4 min"
    if minutes < 1:
        return "in under a minute"
    hours, minutes = divmod(minutes, 60)
    if not hours:
        return f"in {minutes} min"
    if hours >= 24:
        return f"in {hours // 24} d {hours % 24} h"
    return f"in {hours} h {minutes:02d} min"
