"""
What happens to a race that others need to hear about, sent after the transaction that stored it
commits. ``races`` knows nothing of WebSockets: ``live`` listens and broadcasts.
"""

from django.dispatch import Signal

# One numbered update of a race, as logged (races.models.RaceUpdate): race_id: int, epoch: str,
# seq: int (its number in that epoch: Race.updates_epoch, Race.update_seq), kind: str
# (RaceUpdate.Kind: odds, status, starter, interim, result), published_at: datetime, data: what
# went out (see RaceUpdate).
update_logged = Signal()
