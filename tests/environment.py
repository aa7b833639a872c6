"""
Environment for a test run, loaded as a pytest plugin (``-p tests.environment``) so that it is
in place before pytest-django reads ``racing.settings``.
"""

import os
import uuid

# Long and varied enough for the settings, which refuse weak keys with DEBUG off (as under plain
# `pytest`, without make's DEBUG=1).
os.environ.setdefault("SECRET_KEY", "test-only-secret-key-not-for-production-6f1c9a2e7b4d8035")
# Redis keys of this run carry their own prefix: tests on a shared Redis touch nothing else.
os.environ.setdefault("CHANNEL_LAYER_PREFIX", f"racing-test-{uuid.uuid4().hex[:12]}")
# Each pytest-xdist worker (make test runs two) has a database of its own, so its race ids are
# the other's too: it gets a prefix of its own under the run's, or one worker's simulation of
# race 45 would be heard by the other's clients of its race 45. Workers inherit the run's
# environment, so the run's prefix is already set here.
if worker := os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ["CHANNEL_LAYER_PREFIX"] = f"{os.environ['CHANNEL_LAYER_PREFIX']}-{worker}"
# In-process tests render pages without collectstatic; server processes started by the tests
# use the production storage on a collected STATIC_ROOT (tests/servers.py).
os.environ.setdefault("STATICFILES_STORAGE", "django.contrib.staticfiles.storage.StaticFilesStorage")
