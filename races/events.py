"""
What happens to a race that others need to hear about, sent after the transaction that stored it
commits. ``races`` knows nothing of WebSockets: ``live`` listens and broadcasts.
"""

from django.dispatch import Signal

# race_id: int, epoch: str, seq: int (the update's number in
# that epoch: Race.updates_epoch, Race.update_seq), odds: list[tuple[horse_id, odds]], taken_at: datetime
odds_recorded = Signal()
# race_id: int, epoch: str, seq: int, results: [{"horse_id", "placing", "finished"}] finishers first
# (placing None for a starter that did not finish), declared_at: datetime
result_declared = Signal()
