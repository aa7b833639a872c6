"""
The race card as a file: a meeting's fields, one row per starter, read from CSV, XLSX or JSON and
written as CSV or XLSX (docs/race-office.md).

- ``columns``: the columns, their order, and the values each takes;
- ``rows``: pure parsing and checking of a file's rows into race-card rows (no ORM, no I/O);
- ``formats``: bytes in and out (size limit, encoding, CSV/XLSX/JSON through django-import-export
  and tablib, spreadsheet formulas escaped);
- ``services``: ``racecard_import``, the all-or-nothing apply; ``selectors``: a meeting's card;
- ``admin``: the admin's import (with its preview) and export, kept thin.
"""
