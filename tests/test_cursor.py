"""A connection's place in its race's numbered updates (live/cursor.py): pure, no I/O."""

from __future__ import annotations

from live.protocol.cursor import MAX_SENT_RANGES, LiveDecision, ResumeRead, StreamCursor


def cursor(*, position: int = 0, sent: list[tuple[int, int]] | None = None, max_replay: int = 100) -> StreamCursor:
    streaming = StreamCursor(max_held=3, max_replay=max_replay, epoch="e1", position=position, sent=sent or [])
    streaming.release()
    return streaming


def event(seq: int, epoch: str = "e1") -> dict:
    return {"epoch": epoch, "seq": seq, "text": f"update {seq}"}


def rows(first: int, last: int) -> list[dict]:
    return [{"seq": seq} for seq in range(first, last + 1)]


def test_live_updates_go_out_once_in_order_and_never_backwards():
    streaming = cursor(position=3, sent=[(3, 3)])

    decisions = [streaming.live(event(seq)) for seq in (3, 2, 4, 5, 4)]

    assert decisions == [LiveDecision.SKIP, LiveDecision.SKIP, LiveDecision.SEND, LiveDecision.SEND, LiveDecision.SKIP]
    assert streaming.sent == [(3, 5)] and streaming.position == 5


def test_updates_are_held_until_released_then_sent_once_in_order():
    connecting = StreamCursor(max_held=3, max_replay=10)
    for seq in (4, 5, 6):
        assert connecting.live(event(seq)) is LiveDecision.HOLD
    connecting.epoch, connecting.position = "e1", 4  # the race as read had 4 already

    to_send, reset = connecting.release()

    assert [e["seq"] for e in to_send] == [5, 6] and not reset
    assert connecting.live(event(7)) is LiveDecision.SEND


def test_too_many_held_is_an_overflow_and_another_epoch_a_reset():
    connecting = StreamCursor(max_held=2, max_replay=10, epoch="e1")
    connecting.live(event(1))
    connecting.live(event(2))

    assert connecting.live(event(3)) is LiveDecision.OVERFLOW
    assert cursor().live(event(1, epoch="e2")) is LiveDecision.RESET


def test_a_reset_while_holding_is_reported_on_release():
    connecting = StreamCursor(max_held=5, max_replay=10, epoch="e1")
    connecting.live(event(1, epoch="e2"))

    assert connecting.release() == ([], True)


def test_a_resume_of_what_this_connection_sent_needs_no_read():
    streaming = cursor(position=9, sent=[(5, 9)])

    assert streaming.resume(last_seq=5, epoch="e1") is True
    assert streaming.resume(last_seq=9, epoch=None) is True


def test_a_resume_reads_only_what_came_before_the_connection():
    streaming = cursor(position=9, sent=[(5, 9)])

    plan = streaming.resume(last_seq=2, epoch="e1")

    assert plan == ResumeRead(ranges=((3, 4),), tail_limit=0)
    replay = streaming.replay(last_seq=2, plan=plan, rows=[rows(3, 4)])
    assert [r["seq"] for r in replay] == [3, 4]
    assert streaming.sent == [(3, 9)]
    assert streaming.resume(last_seq=2, epoch="e1") is True  # asked again: nothing to read


def test_a_hole_in_what_was_sent_is_filled_by_a_resume():
    streaming = cursor(position=5, sent=[(5, 5)])
    streaming.live(event(7))  # 6's broadcast was lost, and the log could not be read either

    plan = streaming.resume(last_seq=5, epoch="e1")

    assert plan.ranges == ((6, 6),)
    assert [r["seq"] for r in streaming.replay(last_seq=5, plan=plan, rows=[rows(6, 6)])] == [6]
    assert streaming.sent == [(5, 7)]


def test_a_client_that_saw_further_reads_the_log_beyond_this_process():
    streaming = cursor(position=3, sent=[(3, 3)])

    plan = streaming.resume(last_seq=5, epoch="e1")

    assert plan == ResumeRead(ranges=((4, None),), tail_limit=5 - 3 + 100 + 1)
    replay = streaming.replay(last_seq=5, plan=plan, rows=[rows(4, 7)])
    assert [r["seq"] for r in replay] == [6, 7]
    assert streaming.position == 7
    assert streaming.live(event(5)) is LiveDecision.SKIP  # the client had it from elsewhere


def test_a_seq_the_log_never_reached_or_a_renumbered_log_does_not_resume():
    streaming = cursor(position=3, sent=[(3, 3)])
    beyond = streaming.resume(last_seq=9, epoch=None)
    assert streaming.replay(last_seq=9, plan=beyond, rows=[rows(4, 5)]) is None

    before = streaming.resume(last_seq=0, epoch=None)
    assert streaming.replay(last_seq=0, plan=before, rows=[[{"seq": 1}]]) is None  # 2 is missing


def test_another_epoch_or_too_far_behind_does_not_resume():
    streaming = cursor(position=500, sent=[(500, 500)], max_replay=100)

    assert streaming.resume(last_seq=450, epoch="e0") is False
    assert streaming.resume(last_seq=300, epoch="e1") is False
    assert isinstance(streaming.resume(last_seq=400, epoch="e1"), ResumeRead)


def test_sent_ranges_merge_and_stay_bounded():
    streaming = cursor()
    for seq in range(1, 200, 2):  # every other seq: a hole between each
        streaming.mark_sent(seq)

    assert len(streaming.sent) == MAX_SENT_RANGES
    streaming.mark_sent(2, 300)
    assert streaming.sent == [(1, 300)]
    assert streaming.unsent_ranges(1, 310) == [(301, 310)]
    assert streaming.unsent_count(295, 310) == 10
