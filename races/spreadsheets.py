"""
Cells a spreadsheet would run: the one escape for every file the race office downloads (race
cards, results, odds history) and the one reading of it back (a race card imported again).

A spreadsheet runs a cell that starts with ``=``, ``+``, ``-`` or ``@`` (and, in some, a tab or
carriage return) as a formula, so a horse entered as ``=HYPERLINK("http://x")`` would be a live
link in the office's spreadsheet. Such text is written with a leading apostrophe, the escape
spreadsheets themselves use (OWASP's advice for CSV injection); numbers stay numbers.
"""

from __future__ import annotations

import re
from typing import Any

# What a spreadsheet reads as the start of a formula (a tab or carriage return: some do, after
# trimming), and what it takes as "this cell is text".
FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
TEXT_PREFIX = "'"
# Control characters no XLSX cell may hold (openpyxl refuses them): shown as U+FFFD in every
# format, so that a file's CSV and XLSX say the same.
CONTROL_CHARACTERS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")


def spreadsheet_safe(value: Any) -> Any:
    """Return ``value`` as a spreadsheet may hold it: text that would start a formula escaped with
    a leading apostrophe, control characters replaced; anything else (numbers) as it is."""
    if not isinstance(value, str):
        return value
    value = CONTROL_CHARACTERS.sub("\N{REPLACEMENT CHARACTER}", value)
    return TEXT_PREFIX + value if value.startswith(FORMULA_TRIGGERS) else value


def spreadsheet_unescaped(text: str) -> str:
    """Return text as it was before ``spreadsheet_safe`` escaped it (a file read back in)."""
    if text.startswith(TEXT_PREFIX) and text[1:].startswith(FORMULA_TRIGGERS):
        return text[1:]
    return text
