"""The race board's words for a race's status and placings: one copy, for the templates and (in
the page's config) for its script."""

from __future__ import annotations

# races.lifecycle's statuses as a fan reads them.
STATUS_LABELS = {
    "scheduled": "Upcoming",
    "open": "Market open",
    "closed": "Closed – racing",
    "interim": "Interim",
    "protest": "Protest",
    "official": "Official",
    "abandoned": "Abandoned",
}


def ordinal(number: int) -> str:
    """Return a placing as read aloud: 1st, 2nd, 3rd, 4th ... 11th, 12th, 13th ... 21st."""
    if 10 <= number % 100 <= 20:
        return f"{number}th"
    suffix = {1: "st", 2: "nd", 3: "rd"}.get(number % 10, "th")
    return f"{number}{suffix}"


def starts_in(seconds: int) -> str:
    """Return the time to a race's start as a list of races shows it (format.js's startsIn says
    the same in the page's script): "4 d 3 h", "3 h 05 m", "12 m 05 s", "45 s"; "Due" once the
    start has come and the race has not yet closed."""
    if seconds <= 0:
        return "Due"
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {minutes:02d} m"
    if minutes:
        return f"{minutes} m {secs:02d} s"
    return f"{secs} s"
