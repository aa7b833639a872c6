"""Words the race board shows for a race's status and placings, for its templates."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django import template

from live.board.labels import STATUS_LABELS, ordinal, starts_in

register = template.Library()


@register.filter
def status_label(status: str) -> str:
    """Return what the board calls a race status ("open": "Market open")."""
    return STATUS_LABELS.get(status, status)


@register.filter
def lookup(mapping: Mapping[Any, Any], key: Any) -> Any:
    """Return ``mapping[key]``, or None: a race's entry in a dict keyed by race id."""
    return mapping.get(key)


register.filter("ordinal", ordinal)
register.filter("starts_in", starts_in)
