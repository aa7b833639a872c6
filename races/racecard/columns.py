"""The race card's columns, in the order a file has them, and the values each one takes."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Column:
    name: str
    kind: str  # what the docs call its type
    required: bool  # a row must have a value in it (every column must be in the file)
    example: str


# fmt: off
COLUMNS = (
    Column("meeting_code", "text, up to 32", True, "NZ_20261204_ADD"),
    Column("date", "date, YYYY-MM-DD", True, "2026-12-04"),
    Column("venue", "text, up to 100", False, "Addington"),
    Column("race_number", "whole number, 1 or more", True, "1"),
    Column("race_name", "text, up to 200", False, "Rangiora Vet Centre Ratings 40-52 Trotters Handicap"),
    Column("distance_m", "whole number of metres, 1 or more", True, "2600"),
    Column("gait", "pace or trot", False, "trot"),
    Column("start_type", "mobile or standing", False, "standing"),
    Column("start_time", "ISO 8601 date and time with its UTC offset", False, "2026-12-04T18:05:00+13:00"),
    Column("track_condition", "fast, good, easy, dead, slow or heavy", False, "good"),
    Column("weather", "fine, overcast, showers, rain or windy", False, "fine"),
    Column("runner_number", "whole number, 1 or more", False, "1"),
    Column("barrier", "whole number, 1 or more", False, "1"),
    Column("handicap_m", "whole number of metres, 0 or more", False, "10"),
    Column("horse", "text, up to 100", True, "Kowhai Express"),
    Column("driver", "text, up to 100", False, "Blair Orange"),
    Column("trainer", "text, up to 100", False, "Mark Purdon"),
)
# fmt: on
NAMES = tuple(column.name for column in COLUMNS)
# The columns that describe a meeting or a race: every row of one race must give them alike.
MEETING_COLUMNS = ("date", "venue")
RACE_COLUMNS = ("race_name", "distance_m", "gait", "start_type", "start_time", "track_condition", "weather")
