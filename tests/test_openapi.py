"""The OpenAPI schema (/api/schema/) tells the truth: schemathesis finds nothing the server does
that the schema does not say, and a client generated from it reads a race and posts odds."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
import urllib.request

import pytest
from jsonschema import Draft202012Validator

from bench import conformance
from tests.servers import feed_token, start_daphne
from tests.spec import SCHEMA_DIR

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def api_server(server_database, tmp_path_factory):
    """A Daphne with no simulation: every odds update in these tests is posted."""
    server = start_daphne(server_database, log_dir=tmp_path_factory.mktemp("openapi"), SIMULATION_ENABLED="0")
    yield server
    server.stop()


def schema_of(server) -> dict:
    with urllib.request.urlopen(server.http_url("/api/schema/?format=json"), timeout=10) as response:
        return json.loads(response.read())


def test_schemathesis_finds_nothing_the_schema_does_not_say(tmp_path):
    # A short, seeded run (all checks, all phases) on a database of its own: the stateful phase
    # declares results. `make schemathesis` runs 200 examples an operation.
    result = conformance.run(examples=15, seed=1, workdir=tmp_path)

    assert result.passed, result.output[-6000:]
    assert "Stateful" in result.summary and "passed" in result.summary


def test_every_operation_says_whether_it_needs_a_token_and_every_error_has_one_shape(api_server):
    schema = schema_of(api_server)

    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            writes = method == "post"
            assert operation["security"] == ([{"tokenAuth": []}, {"cookieAuth": []}] if writes else []), (path, method)
            for code, response in operation["responses"].items():
                if code.startswith(("4", "5")):
                    content = response["content"]["application/json"]["schema"]
                    assert content.get("$ref") in ("#/components/schemas/Error", "#/components/schemas/ResultConflict")
            if writes:
                assert {"401", "403", "404", "413"} <= set(operation["responses"]), (path, method)
                # A body is parsed (400, 415) and checked against the race (422) only where there is one.
                with_body = {"400", "415", "422"} & set(operation["responses"])
                assert with_body == ({"400", "415", "422"} if "requestBody" in operation else set()), (path, method)


def test_the_race_card_is_initial_states_data(api_server):
    schema = schema_of(api_server)["components"]["schemas"]
    shared = json.loads((SCHEMA_DIR / "initial_state.json").read_text())["properties"]["data"]

    assert set(schema["RaceCard"]["properties"]) == set(shared["properties"])
    # The race day's additions, as in initial_state (docs/asyncapi.yaml): the race's status and
    # each starter's scratching.
    race_fields, starter_fields = shared["properties"]["race"], shared["properties"]["starters"]["items"]
    assert set(schema["RaceCardRace"]["properties"]) == {*race_fields["properties"], "status"}
    assert set(schema["RaceCardStarter"]["properties"]) == {*starter_fields["properties"], "scratched"}
    with urllib.request.urlopen(api_server.http_url("/api/races/1/"), timeout=10) as response:
        card = json.loads(response.read())
    assert not list(Draft202012Validator(shared).iter_errors(card))


def test_a_client_generated_from_the_schema_reads_a_race_and_posts_odds(api_server, tmp_path):
    (tmp_path / "schema.json").write_text(json.dumps(schema_of(api_server)))
    # The generator reads a response by its first media type it knows: told that an XLSX is bytes,
    # it reads the exports (XLSX first) as files (docs/api.md).
    (tmp_path / "config.yaml").write_text(
        "post_hooks: []\npackage_name_override: race_day_client\ncontent_type_overrides:\n"
        "  application/vnd.openxmlformats-officedocument.spreadsheetml.sheet: application/octet-stream\n"
    )
    generator = [sys.executable, "-m", "openapi_python_client", "generate"]
    subprocess.run(
        [*generator, "--path", "schema.json", "--meta", "none", "--config", "config.yaml", "--output-path", "pkg/race_day_client"],
        cwd=tmp_path, check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    sys.path.insert(0, str(tmp_path / "pkg"))
    try:
        client_package = importlib.import_module("race_day_client")
        races_retrieve = importlib.import_module("race_day_client.api.races.races_retrieve")
        odds_create = importlib.import_module("race_day_client.api.races.races_odds_create")
        odds_latest = importlib.import_module("race_day_client.api.races.races_odds_latest_retrieve")
        models = importlib.import_module("race_day_client.models")
        odds_export = importlib.import_module("race_day_client.api.races.races_odds_export_retrieve")
        race_id = api_server.database.race_of_its_own(copy_of=9)
        reader = client_package.Client(base_url=api_server.http_url(""))
        feed = client_package.AuthenticatedClient(
            base_url=api_server.http_url(""), token=feed_token(api_server), prefix="Token"
        )

        card = races_retrieve.sync(client=reader, race_id=race_id)
        prices = [models.HorseOdds(horse_id=s.horse_id, odds=2.5 + i) for i, s in enumerate(card.starters)]
        accepted = odds_create.sync(client=feed, race_id=race_id, body=prices)
        latest = odds_latest.sync(client=reader, race_id=race_id)
        refused = odds_create.sync_detailed(client=feed, race_id=race_id, body=[models.HorseOdds(horse_id=1, odds=3.0)])
        anonymous = odds_create.sync_detailed(client=reader, race_id=race_id, body=prices)
        csv_file = odds_export.sync(client=reader, race_id=race_id)
        xlsx_file = odds_export.sync(client=reader, race_id=race_id, format_=models.RacesOddsExportRetrieveFormat.XLSX)
    finally:
        sys.path.remove(str(tmp_path / "pkg"))
        for name in [m for m in sys.modules if m.startswith("race_day_client")]:
            del sys.modules[name]

    assert card.race.id == race_id and card.starter_count == len(card.starters) > 0
    assert isinstance(accepted, models.OddsAccepted) and [o.odds for o in accepted.odds] == [p.odds for p in prices]
    assert [(o.horse_id, o.odds) for o in latest.odds] == [(p.horse_id, p.odds) for p in prices]
    assert refused.status_code == 422 and isinstance(refused.parsed, models.Error)
    assert "is not a starter" in refused.parsed.detail
    assert anonymous.status_code == 401 and isinstance(anonymous.parsed, models.Error)
    assert csv_file.payload.read().decode("utf-8-sig").count("\r\n") == 1 + len(prices)  # the header, a row each
    assert xlsx_file.payload.read().startswith(b"PK")  # a zip: the XLSX container
