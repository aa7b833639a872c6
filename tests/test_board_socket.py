"""The board's socket (live/static/live/socket.js) resumes after a reconnect and asks again on a gap."""

from __future__ import annotations

import json
import shutil
import subprocess

from tests.conftest import require_service
from tests.servers import REPO_DIR


def test_the_board_resumes_from_its_last_seq_and_asks_again_after_a_gap():
    node = shutil.which("node")
    require_service(node is not None, "Node.js is not installed: the board's socket module runs in it")

    done = subprocess.run(
        [node, str(REPO_DIR / "tests" / "js" / "socket_resume.mjs"), str(REPO_DIR / "live" / "static" / "live" / "socket.js")],
        capture_output=True, text=True, timeout=30, check=True,
    )  # fmt: skip
    report = json.loads(done.stdout)

    first_connection, second_connection = report["sent"]
    assert first_connection == [{"type": "subscribe", "race_id": 7}]
    assert second_connection == [
        {"type": "subscribe", "race_id": 7, "last_seq": 2, "epoch": "e1"},  # resume after the reconnect
        {"type": "subscribe", "race_id": 7, "last_seq": 4, "epoch": "e1"},  # 5 skipped: ask again
    ]
    # On the reconnect the page keeps its history until the server says the resume worked.
    assert ["initial_state", None, True] in report["seen"]
