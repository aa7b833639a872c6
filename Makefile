# Two commands: `make run` serves the race-day server, `make test` runs the whole suite.
# Both create .venv if missing, install requirements.txt into it, and need nothing else.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000
# Local development defaults; production sets these (and SECRET_KEY) in the environment.
export DEBUG ?= 1

.PHONY: run test bench soak install migrate fixtures

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: requirements.txt | $(BIN)/python
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.txt
	touch $@

install: $(VENV)/.installed

migrate: install
	$(BIN)/python manage.py migrate --noinput

fixtures: migrate
	$(BIN)/python manage.py loaddata fixtures/race_day.json

run: fixtures
	@mkdir -p staticfiles  # WhiteNoise serves from the apps with DEBUG on; it only wants the folder
	@echo ""
	@echo "  Race-day server on http://$(HOST):$(PORT)/"
	@echo "    race day:   http://$(HOST):$(PORT)/"
	@echo "    admin:      http://$(HOST):$(PORT)/admin/   (create a login: $(BIN)/python manage.py createsuperuser)"
	@echo "    live race:  ws://$(HOST):$(PORT)/ws/races/1"
	@echo "    try it:     $(BIN)/python -m websockets ws://$(HOST):$(PORT)/ws/races/1"
	@echo ""
	$(BIN)/python -m racing.server --bind $(HOST) --port $(PORT)

test: install
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# The fan-out benchmark, every scenario (about ten minutes); results into docs/performance.md.
bench: install
	$(BIN)/python -m bench --json docs/performance.json --markdown docs/performance.md

# The soak run (ten minutes): races, fans coming, going and resuming, faults; docs/reliability.md.
soak: install
	$(BIN)/python -m bench.soak --duration-s 600 --json docs/reliability.json --markdown docs/reliability.md
