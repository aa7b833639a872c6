"""
A race's life, as tote feeds and race offices know it: its statuses and the moves between them,
and what a result must be (dead heats included). Pure: no ORM, no I/O; races.services applies it.

    scheduled -> open (the market is up) -> closed (they are racing: no more odds)
              -> interim (placings in, not yet official) -> official
    interim -> protest -> interim or official
    any status before official -> abandoned (no result; the odds stop)

A race may also close with no market at all (scheduled -> closed), and an official result may be
declared straight after the race (closed -> official): many feeds send no interim.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping

SCHEDULED, OPEN, CLOSED, INTERIM, PROTEST, OFFICIAL, ABANDONED = (
    "scheduled",
    "open",
    "closed",
    "interim",
    "protest",
    "official",
    "abandoned",
)
STATUSES = (SCHEDULED, OPEN, CLOSED, INTERIM, PROTEST, OFFICIAL, ABANDONED)

NEXT: Mapping[str, tuple[str, ...]] = {
    SCHEDULED: (OPEN, CLOSED, ABANDONED),
    OPEN: (CLOSED, ABANDONED),
    CLOSED: (INTERIM, OFFICIAL, ABANDONED),
    INTERIM: (PROTEST, OFFICIAL, ABANDONED),
    PROTEST: (INTERIM, OFFICIAL, ABANDONED),
    OFFICIAL: (),
    ABANDONED: (),
}

# Odds may be published while the market is up (a scheduled race's first odds open it).
TAKES_ODDS = (SCHEDULED, OPEN)
# A starter may be scratched until the race closes; after the market opened it is a late scratching.
TAKES_SCRATCHINGS = (SCHEDULED, OPEN)
# A scratching may be undone before the market opens.
TAKES_REINSTATEMENTS = (SCHEDULED,)
# A driver may be replaced until they are racing.
TAKES_DRIVER_CHANGES = (SCHEDULED, OPEN)
# The start time may change (a delay) before the race is run.
TAKES_DELAYS = (SCHEDULED, OPEN)
# How far a start time may move in one change, either way: further is a new race day, not a delay.
START_MOVE_MAX = dt.timedelta(days=7)
# Placings are in: what the race card calls its result, interim or official.
HAS_PLACINGS = (INTERIM, PROTEST, OFFICIAL)
# Still to be run: a tote's next to go lists these, a race past its start time until it closes.
TO_GO = (SCHEDULED, OPEN)


class TransitionError(ValueError):
    """A move the race's status does not allow; ``allowed`` are the moves it does."""

    def __init__(self, current: str, wanted: str) -> None:
        self.current, self.wanted, self.allowed = current, wanted, NEXT.get(current, ())
        allowed = ", ".join(self.allowed) if self.allowed else "none: the race's day is over"
        super().__init__(f"a race that is {current} cannot become {wanted}; it can become: {allowed}")


def transition_check(current: str, wanted: str) -> None:
    """Raise TransitionError unless a race that is ``current`` may become ``wanted``."""
    if wanted not in NEXT.get(current, ()):
        raise TransitionError(current, wanted)


def path_to(current: str, wanted: str) -> list[str]:
    """Return the statuses a race passes through from ``current`` to ``wanted`` by the shortest
    allowed path, ``wanted`` last ([] if it is there already); raise TransitionError if none."""
    if current == wanted:
        return []
    paths = [[current]]
    seen = {current}
    while paths:
        path = paths.pop(0)
        for following in NEXT[path[-1]]:
            if following == wanted:
                return [*path[1:], wanted]
            if following not in seen and following not in (ABANDONED,):
                seen.add(following)
                paths.append([*path, following])
    raise TransitionError(current, wanted)


def placings_problems(placings: Mapping[int, int | None]) -> list[str]:
    """Return what is wrong with a result's placings (None: did not finish). Finishers' placings
    must form a competition ranking: 1 first, and a dead heat shares a placing while the next
    skips as many as shared it (1, 1, 3; 1, 2, 2, 4)."""
    finishers = sorted(placing for placing in placings.values() if placing is not None)
    if not finishers:
        return ["at least one starter must finish"]
    expected = [finishers.index(placing) + 1 for placing in finishers]  # each placing's first position
    if finishers != expected:
        return [
            "finishers' placings must rank them 1, 2, 3 ..., a dead heat sharing a placing and the "
            f"next skipping (1, 1, 3), not {', '.join(map(str, finishers))}"
        ]
    return []


def start_time_problem(*, current: dt.datetime | None, wanted: dt.datetime, now: dt.datetime) -> str | None:
    """Return why a race cannot be given the start time ``wanted`` (None if it can): it may move
    at most START_MOVE_MAX from its current start (from now, if it has none)."""
    base = current if current is not None else now
    if abs(wanted - base) > START_MOVE_MAX:
        return (
            f"a start time moves at most {START_MOVE_MAX.days} days from the race's current one "
            f"({base.isoformat()}): {wanted.isoformat()} is further"
        )
    return None
