"""The board's state module (live/board/static/live/state.js), by its own Node tests in tests/js/."""

from __future__ import annotations

import shutil
import subprocess

from tests.conftest import require_service
from tests.servers import REPO_DIR


def test_the_boards_node_tests_pass():
    node = shutil.which("node")
    require_service(node is not None, "Node.js is not installed: the board's state tests run in it")

    done = subprocess.run(
        [node, "--test", str(REPO_DIR / "tests" / "js")], cwd=REPO_DIR, capture_output=True, text=True, timeout=60
    )

    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "# fail 0" in done.stdout and "# pass 0" not in done.stdout
