"""
A client's view of a race's day, built from the messages it receives in order: each is checked to
follow from the ones before as docs/protocol.md says (consecutive seqs, statuses moving as
races.lifecycle allows, odds for the runners still in, placings of exactly those runners, a dead
heat ranked 1, 1, 3). One checker for the simulation tests, the end-to-end tests and the soak run
(bench/soak.py), which imports it without Django set up: races.lifecycle is pure.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from races import lifecycle

# What a simulated market's published odds add up to (live.market.model: an overround of
# 1.165-1.185 before rounding).
OVERROUND_BAND = (1.15, 1.20)
UPDATE_TYPES = ("odds_update", "race_status", "starter_update", "interim_result", "result_update")


@dataclass
class RaceDayWatch:
    """A race's day as one client has seen it so far; ``problems`` lists every message that did
    not follow. ``simulated``: the odds must price every runner within the tote's overround."""

    starters: list[int]
    scratched: set[int] = field(default_factory=set)
    status: str = lifecycle.SCHEDULED
    simulated: bool = True
    last_seq: int | None = None
    last_timestamp: str = ""
    odds_updates: int = 0
    scratchings: list[tuple[int, bool]] = field(default_factory=list)  # (horse id, late)
    driver_changes: list[int] = field(default_factory=list)
    interims: list[list[dict]] = field(default_factory=list)
    protests: list[str] = field(default_factory=list)  # each protest's reason
    official: list[dict] | None = None
    problems: list[str] = field(default_factory=list)

    @classmethod
    def from_initial_state(cls, initial: dict[str, Any], *, simulated: bool = True) -> RaceDayWatch:
        """Watch from what ``initial_state`` says the race is now."""
        data = initial["data"]
        return cls(
            starters=[s["horse_id"] for s in data["starters"]],
            scratched={s["horse_id"] for s in data["starters"] if s["scratched"]},
            status=data["race"]["status"],
            simulated=simulated,
        )

    @classmethod
    def from_the_start(cls, initial: dict[str, Any], *, simulated: bool = True) -> RaceDayWatch:
        """Watch a race's whole log (from seq 1) of a race with these starters, as drawn."""
        return cls(starters=[s["horse_id"] for s in initial["data"]["starters"]], simulated=simulated)

    @property
    def runners(self) -> set[int]:
        return set(self.starters) - self.scratched

    @property
    def over(self) -> bool:
        """The race's day is over: official with its result, or abandoned."""
        return self.status == lifecycle.ABANDONED or self.official is not None

    @property
    def dead_heat(self) -> bool:
        placings = [r["placing"] for r in self.official or [] if r["finished"]]
        return len(placings) != len(set(placings))

    @property
    def protest_upheld(self) -> bool:
        return bool(self.protests) and bool(self.interims) and _placings(self.interims[0]) != _placings(self.official)

    def see_all(self, messages: list[dict[str, Any]]) -> RaceDayWatch:
        for message in messages:
            self.see(message)
        return self

    def see(self, message: dict[str, Any]) -> None:
        kind = message["type"]
        if kind not in UPDATE_TYPES:
            return
        seq = message["seq"]
        if self.last_seq is not None and seq != self.last_seq + 1:
            self._problem(message, f"seq {seq} after {self.last_seq}")
        self.last_seq = seq
        if message["timestamp"] < self.last_timestamp:
            self._problem(message, f"timestamp {message['timestamp']} before {self.last_timestamp}")
        self.last_timestamp = max(self.last_timestamp, message["timestamp"])
        if self.over:
            self._problem(message, f"after the race's day was over ({self.status})")
        getattr(self, f"_{kind}")(message)

    def _race_status(self, message: dict[str, Any]) -> None:
        status, previous = message["status"], message["previous"]
        if previous != self.status:
            self._problem(message, f"moves from {previous}, but the race was {self.status}")
        if status != previous and status not in lifecycle.NEXT.get(previous, ()):
            self._problem(message, f"{previous} cannot become {status}")
        if status == lifecycle.PROTEST:
            self.protests.append(message["reason"] or "")
        self.status = status

    def _odds_update(self, message: dict[str, Any]) -> None:
        self.odds_updates += 1
        if self.status != lifecycle.OPEN:
            self._problem(message, f"odds while the race is {self.status}")
        priced = {o["horse_id"] for o in message["odds"]}
        if priced & self.scratched:
            self._problem(message, f"odds for scratched horses {sorted(priced & self.scratched)}")
        if self.simulated:
            if priced != self.runners:
                self._problem(message, f"odds for {sorted(priced)}, the runners are {sorted(self.runners)}")
            overround = sum(1 / o["odds"] for o in message["odds"])
            if not OVERROUND_BAND[0] <= overround <= OVERROUND_BAND[1]:
                self._problem(message, f"an overround of {overround:.3f}")

    def _starter_update(self, message: dict[str, Any]) -> None:
        horse_id, change = message["starter"]["horse_id"], message["change"]
        if horse_id not in self.runners:
            self._problem(message, f"{change} for horse {horse_id}, which is not running")
        if change == "scratched":
            if self.status not in lifecycle.TAKES_SCRATCHINGS:
                self._problem(message, f"a scratching while the race is {self.status}")
            self.scratched.add(horse_id)
            self.scratchings.append((horse_id, self.status == lifecycle.OPEN))
        elif change == "driver_changed":
            if self.status not in lifecycle.TAKES_DRIVER_CHANGES:
                self._problem(message, f"a driver change while the race is {self.status}")
            self.driver_changes.append(horse_id)
        if not message["starter"]["scratched"] == (horse_id in self.scratched):
            self._problem(message, "the starter's scratched flag disagrees")

    def _interim_result(self, message: dict[str, Any]) -> None:
        if self.status != lifecycle.INTERIM:
            self._problem(message, f"interim placings while the race is {self.status}")
        self._check_placings(message)
        self.interims.append(message["results"])

    def _result_update(self, message: dict[str, Any]) -> None:
        if self.status != lifecycle.OFFICIAL:
            self._problem(message, f"an official result while the race is {self.status}")
        self._check_placings(message)
        if self.interims and self.protests == [] and _placings(self.interims[-1]) != _placings(message["results"]):
            self._problem(message, "official placings differ from the interim ones, with no protest")
        self.official = message["results"]

    def _check_placings(self, message: dict[str, Any]) -> None:
        results = message["results"]
        if {r["horse_id"] for r in results} != self.runners:
            self._problem(message, f"placings for {sorted(r['horse_id'] for r in results)}, not the runners")
        if problems := lifecycle.placings_problems({r["horse_id"]: r["placing"] for r in results}):
            self._problem(message, "; ".join(problems))
        if any(r["finished"] != (r["placing"] is not None) for r in results):
            self._problem(message, "finished disagrees with placing")

    def _problem(self, message: dict[str, Any], text: str) -> None:
        self.problems.append(f"{message['type']} seq {message.get('seq')}: {text}")


def _placings(results: list[dict] | None) -> dict[int, int | None]:
    return {r["horse_id"]: r["placing"] for r in results or []}
