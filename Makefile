# Two commands: `make run` serves the race-day server, `make test` runs the whole suite.
# Both create .venv if missing, install requirements.txt into it, and need nothing else.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000
# Settings for the address served on (racing/launch.py): on loopback DEBUG is on, as for
# development; on any other address DEBUG is off, with a kept SECRET_KEY and collected static
# files. migrate, fixtures and admin go through it too, so they see what the server sees.
LAUNCH = $(BIN)/python -m racing.launch --bind $(HOST) --port $(PORT)

.PHONY: run admin test lint bench soak schemathesis install migrate fixtures lock

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# requirements.txt is the lock: every package pinned, with its hashes (make lock).
$(VENV)/.installed: requirements.txt | $(BIN)/python
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --require-hashes -r requirements.txt
	touch $@

install: $(VENV)/.installed

migrate: install
	$(LAUNCH) manage migrate --noinput

fixtures: migrate
	$(LAUNCH) manage loaddata fixtures/race_day.json

run: fixtures
	@mkdir -p staticfiles  # WhiteNoise serves from the apps with DEBUG on; it only wants the folder
	$(LAUNCH) serve

# A login for the admin (interactive), with the same settings as `make run`.
admin: migrate
	$(LAUNCH) manage createsuperuser

# The suite, the benchmark and the soak start their own servers with DEBUG off; their own
# process runs as in development.
test lint bench soak schemathesis: export DEBUG ?= 1

# Two workers (pytest-xdist), one per core: the suite mostly waits on real servers, browsers and
# sockets. A file's tests stay together on one worker (--dist loadfile): they share their
# servers and Redis prefixes. PYTEST_WORKERS=0 runs everything in this process.
PYTEST_WORKERS ?= 2
test: install
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

# Lint and format check (ruff, pyproject.toml) and type checks (mypy) of the domain and the protocol.
lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# Compile requirements.in into requirements.txt with pip-tools (in a venv of its own, so that the
# project's lock never holds the tool that writes it), stamped with requirements.in's digest:
# the suite fails while the lock is stale.
LOCK_VENV := .venv-lock
lock:
	test -x $(LOCK_VENV)/bin/pip-compile || ($(PYTHON) -m venv $(LOCK_VENV) && $(LOCK_VENV)/bin/pip install --quiet pip-tools==7.6.2)
	$(LOCK_VENV)/bin/pip-compile --quiet --generate-hashes --allow-unsafe --strip-extras --no-emit-index-url --no-emit-find-links \
		--output-file requirements.txt requirements.in
	$(PYTHON) -c 'import hashlib, pathlib; lock = pathlib.Path("requirements.txt"); \
		digest = hashlib.sha256(pathlib.Path("requirements.in").read_bytes()).hexdigest(); \
		lock.write_text(f"# requirements.in sha256: {digest}\n" + lock.read_text())'

# The fan-out benchmark, every scenario (about ten minutes); results into docs/performance.md.
bench: install
	$(BIN)/python -m bench --json docs/performance.json --markdown docs/performance.md

# The REST API against its OpenAPI schema (schemathesis, every check and phase, 200 examples an
# operation, a few minutes); the result into docs/api.md.
schemathesis: install
	$(BIN)/python -m bench.conformance --examples 200 --markdown docs/api.md

# The soak run (ten minutes): races, fans coming, going and resuming, faults; docs/reliability.md.
soak: install
	$(BIN)/python -m bench.soak --duration-s 600 --json docs/reliability.json --markdown docs/reliability.md
