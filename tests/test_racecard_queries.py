"""An import's reads are a fixed number of queries, whatever the size of the file."""

from __future__ import annotations

import pytest

from races.racecard.services import racecard_import
from tests.racecard import OFFICE, dataset_of, example_rows, import_rows, race_rows

pytestmark = pytest.mark.django_db

# Meetings, races, starters (with their horses, drivers and trainers), then horses, drivers and
# trainers matched by name: six reads.
DRY_RUN_QUERIES = 6


@pytest.mark.parametrize("rows", [race_rows, example_rows], ids=["one race", "the fixture day"])
def test_a_dry_run_reads_a_fixed_number_of_queries(rows, django_assert_num_queries):
    import_rows(example_rows())
    dataset = dataset_of(rows())

    with django_assert_num_queries(DRY_RUN_QUERIES):
        report = racecard_import(dataset=dataset, actor=OFFICE, dry_run=True)

    assert report.unchanged == len(rows())


@pytest.mark.parametrize("rows", [race_rows, example_rows], ids=["one race", "the fixture day"])
def test_a_first_import_writes_in_bulk(rows, django_assert_max_num_queries):
    dataset = dataset_of(rows())

    # The reads, a savepoint and its release, and a bulk insert each of horses, drivers, trainers,
    # meetings, races and starters.
    with django_assert_max_num_queries(DRY_RUN_QUERIES + 2 + 6):
        report = racecard_import(dataset=dataset, actor=OFFICE, dry_run=False)

    assert report.created == len(rows())
