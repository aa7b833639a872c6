"""The API's request parser: JSON only, and every body it cannot parse is a 400 that says why."""

from __future__ import annotations

from collections.abc import Mapping
from typing import IO, Any

from rest_framework import parsers
from rest_framework.exceptions import ParseError


class JSONParser(parsers.JSONParser):
    """DRF's JSON parser, with a body nested deeper than Python's recursion limit refused."""

    def parse(
        self, stream: IO[Any], media_type: str | None = None, parser_context: Mapping[str, Any] | None = None
    ) -> Any:
        try:
            return super().parse(stream, media_type, parser_context)
        except RecursionError:
            # json.load recurses once per nested array or object: a few kilobytes of "[" exhaust
            # the stack, and DRF lets any exception other than ValueError become a 500.
            raise ParseError("JSON parse error - nested too deeply.") from None
