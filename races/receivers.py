"""
What the racing domain does when Django loads data around its services.

``loaddata`` (``make run`` loads the fixture race day every time) saves each race as the fixture
has it, raw: its update numbering back at 0 under a new epoch, while the updates it had logged
stay in the database. The race's next update would then take a number already used and fail,
so a race that had a history is reset as ``race_reset`` resets it: it is the race card again.
"""

from typing import Any

from races.models import Race, RaceUpdate
from races.services import race_reset


def race_loaded_raw(*, instance: Race, raw: bool, **_: Any) -> None:
    if raw and RaceUpdate.objects.filter(race_id=instance.pk).exists():
        race_reset(race_id=instance.pk)
