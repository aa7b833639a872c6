"""The board's socket (live/board/static/live/socket.js) follows its race on /ws/live, resuming it
with subscribe's last_seq and epoch after a reconnect and asking again after a gap, counting every
numbered update (odds, statuses, starters' changes, results); it watches its meeting's summaries
on every connection, starts a reset race afresh and stops for a race that is gone."""

from __future__ import annotations

import json
import shutil
import subprocess

from tests.conftest import require_service
from tests.servers import REPO_DIR

MEETING = {"type": "subscribe", "meeting_id": "NZ_20261204_ADD"}


def test_the_board_resumes_each_race_from_its_last_seq_and_asks_again_after_a_gap():
    node = shutil.which("node")
    require_service(node is not None, "Node.js is not installed: the board's socket module runs in it")

    done = subprocess.run(
        [node, str(REPO_DIR / "tests" / "js" / "socket_resume.mjs"), str(REPO_DIR / "live" / "board" / "static" / "live" / "socket.js")],
        capture_output=True, text=True, timeout=30, check=True,
    )  # fmt: skip
    report = json.loads(done.stdout)

    assert report["urls"] == ["ws://test/ws/live"] * 4  # one connection at a time, never a race's own
    first, second, third, fourth = report["sent"]
    assert first == [{"type": "subscribe", "race_id": 7}, MEETING]  # a first visit: the race, and its meeting
    assert second == [
        {"type": "subscribe", "race_id": 7, "last_seq": 2, "epoch": "e1"},  # resume after the reconnect
        MEETING,  # and a fresh meeting_state
        {"type": "subscribe", "race_id": 7, "last_seq": 4, "epoch": "e1"},  # 5 skipped: ask again
    ]
    # race_status, starter_update, interim_result and an unknown type count
    assert third == [
        {"type": "subscribe", "race_id": 7, "last_seq": 8, "epoch": "e1"},
        MEETING,
        {"type": "subscribe", "race_id": 7},  # the race was reset: anew
    ]
    assert fourth == [{"type": "subscribe", "race_id": 7, "last_seq": 1, "epoch": "e2"}, MEETING]  # its new numbering
    seen = report["seen"]
    assert seen[:4] == [["initial_state", None, False], ["subscribed", 0, False], ["odds_update", 1, False], ["odds_update", 2, False]]  # fmt: skip
    # On a reconnect the page keeps its history only once the server says the resume worked ...
    assert seen[4:6] == [["initial_state", None, True], ["subscribed", 4, False]]
    assert seen[6:11] == [  # every message of the race goes to the page, which ignores what it does not know
        ["race_status", 3, False],
        ["starter_update", 4, False],
        ["odds_update", 6, False],
        ["interim_result", 7, False],
        ["photo_finish", 8, False],
    ]
    assert seen[11:13] == [["initial_state", None, True], ["subscribed", 8, False]]
    assert seen[13:16] == [["initial_state", None, False], ["subscribed", 0, False], ["odds_update", 1, False]]  # reset
    # ... and starts afresh from what the connection sends when it did not.
    assert seen[16:] == [["initial_state", None, False], ["subscribed", 90, False], ["odds_update", 90, False]]
    # Another race's summary is for the page; a race the page does not follow, nobody's.
    assert report["summaries"] == [["meeting_state", "NZ_20261204_ADD"], ["race_summary", 8]]
    assert report["statuses"][-2:] == ["live", "gone"]  # a race that is no more: no reconnecting
