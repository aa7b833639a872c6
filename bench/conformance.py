"""
The REST API against its own OpenAPI schema: schemathesis, every check and every phase (the
stateful one included, following the schema's links), against a real Daphne on a database of its
own, with a feed token. Any failure is a place where /api/schema/ and the server disagree.

    python -m bench.conformance                              # 200 examples an operation (make schemathesis)
    python -m bench.conformance --examples 25 --seed 1       # the short run tests/test_openapi.py makes
    python -m bench.conformance --markdown docs/api.md       # and write the result into the docs
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from tests.servers import REPO_DIR, prepare_server_database, start_daphne

MARKER_START, MARKER_END = "<!-- conformance:start -->", "<!-- conformance:end -->"
# The database is the run's own: the stateful phase declares results and posts odds.
SCHEMATHESIS = Path(sys.executable).parent / "schemathesis"


@dataclass
class Conformance:
    command: str
    examples: int
    seed: str
    returncode: int
    summary: str  # schemathesis's summary section, as it printed it
    output: str
    seconds: float

    @property
    def passed(self) -> bool:
        return self.returncode == 0


def run(*, examples: int, seed: int | None, workdir: Path) -> Conformance:
    """Start a server on a fresh database and run schemathesis against its schema."""
    database = prepare_server_database(workdir, name_prefix="racing_conformance")
    server = start_daphne(database, log_dir=workdir, SIMULATION_ENABLED="0")
    try:
        token = database.feed_token()
        command = [
            str(SCHEMATHESIS), "run", server.http_url("/api/schema/"), "--checks", "all",
            "--max-examples", str(examples), "--no-color",
        ]  # fmt: skip
        if seed is not None:
            command += ["--seed", str(seed)]
        started = time.monotonic()
        done = subprocess.run(
            command, cwd=REPO_DIR, env={**os.environ, "FEED_TOKEN": token}, capture_output=True, text=True, timeout=1800
        )
        seconds = time.monotonic() - started
    finally:
        server.stop()
        database.drop()
    output = done.stdout + done.stderr
    at = output.find("=== SUMMARY ")
    summary = output[output.rfind("\n", 0, at) + 1 :] if at >= 0 else output[-3000:]
    used_seed = re.search(r"Seed: (\d+)", output)
    shown = ["schemathesis", "run", "<server>/api/schema/", "--checks", "all", "--max-examples", str(examples)]
    return Conformance(
        command=" ".join(shown + (["--seed", str(seed)] if seed is not None else [])),
        examples=examples,
        seed=used_seed.group(1) if used_seed else "?",
        returncode=done.returncode,
        summary=summary.strip(),
        output=output,
        seconds=seconds,
    )


def markdown(result: Conformance) -> str:
    lines = [
        f"Run on {dt.date.today().isoformat()}: `python -m bench.conformance --examples {result.examples}` "
        f"(`{result.command}`, seed {result.seed}), {round(result.seconds)} s: "
        + ("**no failures**." if result.passed else f"**failures** (exit {result.returncode})."),
        "",
        "```",
        result.summary,
        "```",
    ]
    return "\n".join(lines)


def write_markdown(path: Path, text: str) -> None:
    document = path.read_text()
    head, rest = document.split(MARKER_START, 1)
    _, tail = rest.split(MARKER_END, 1)
    path.write_text(f"{head}{MARKER_START}\n{text}\n{MARKER_END}{tail}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--examples", type=int, default=200, help="examples an operation (schemathesis --max-examples)")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--markdown", type=Path, help="replace the conformance section of this file (docs/api.md)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="conformance-") as workdir:
        result = run(examples=args.examples, seed=args.seed, workdir=Path(workdir))
    print(result.output if not result.passed else result.summary)
    if args.markdown:
        write_markdown(args.markdown, markdown(result))
    sys.exit(0 if result.passed else 1)


if __name__ == "__main__":
    main()
