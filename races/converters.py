"""
Path converters that match only values the database can hold, so that any other value is a 404
from the URL resolver instead of an error from the database.

Importing this module registers them (once per process, as Django requires) as ``<id:...>`` and
``<text:...>``; the URL modules that use them import it.
"""

from __future__ import annotations

from django.urls import register_converter

# A BigAutoField primary key (DEFAULT_AUTO_FIELD): PostgreSQL's bigint and SQLite's INTEGER are
# both signed 64-bit, and SQLite raises OverflowError on a larger Python int.
DATABASE_ID_MAX = 2**63 - 1


def database_id(value: str) -> int | None:
    """Return ``value`` as a primary key the database can hold (1 to 2**63 - 1), or None."""
    if not (value.isascii() and value.isdigit() and len(value) <= len(str(DATABASE_ID_MAX))):
        return None
    number = int(value)
    return number if 1 <= number <= DATABASE_ID_MAX else None


class DatabaseIdConverter:
    """A primary key: 1 to 2**63 - 1, in decimal digits."""

    # At most 19 digits, so that int() never sees a number thousands of digits long; the range
    # is checked in to_python, where a ValueError makes the URL not match.
    regex = "[0-9]{1,19}"

    def to_python(self, value: str) -> int:
        number = database_id(value)
        if number is None:
            raise ValueError(f"{value!r} is not an id the database can hold")
        return number

    def to_url(self, value: int) -> str:
        return str(value)


class DatabaseTextConverter:
    """A path segment without NUL characters, which PostgreSQL refuses in text values."""

    regex = "[^/\\x00]+"

    def to_python(self, value: str) -> str:
        return value

    def to_url(self, value: str) -> str:
        return value


register_converter(DatabaseIdConverter, "id")
register_converter(DatabaseTextConverter, "text")
