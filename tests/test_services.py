"""Under REQUIRE_SERVICES=1 (CI) the suite really runs on PostgreSQL and the Redis layer."""

import os

import pytest
from channels.layers import get_channel_layer
from django.db import connection

pytestmark = pytest.mark.skipif(
    os.environ.get("REQUIRE_SERVICES") != "1", reason="only meaningful under REQUIRE_SERVICES=1"
)


def test_the_database_is_postgresql():
    assert connection.vendor == "postgresql", "REQUIRE_SERVICES=1 needs DATABASE_URL=postgres://..."


def test_the_channel_layer_is_redis():
    assert type(get_channel_layer()).__module__.startswith("channels_redis"), (
        "REQUIRE_SERVICES=1 needs REDIS_URL=redis://..."
    )
