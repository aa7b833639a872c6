"""
Checks that the project is ready to serve, run by ``manage.py check --deploy`` and by
``python -m racing.server`` before it starts Daphne.

With DEBUG off, the hashed static files storage looks every ``{% static %}`` name up in the
manifest that ``collectstatic`` writes. Without it, ``/``, every race page and ``/api/docs/``
fail with 500 ("Missing staticfiles manifest entry"), and WhiteNoise, which serves only
STATIC_ROOT then, has no files either. There is nothing sensible to fall back to (plain names
would 404 all the same), so the server refuses to start and says what to run.
"""

from __future__ import annotations

import os
import sys

from django.conf import settings
from django.contrib.staticfiles.storage import ManifestFilesMixin
from django.core.checks import Error, Tags, register
from django.core.files.storage import storages

COLLECTSTATIC = "manage.py collectstatic --noinput"


# Tagged deploy: `collectstatic` itself runs the staticfiles checks, and must not be refused
# for lacking what it is about to create.
@register(Tags.staticfiles, deploy=True)
def static_manifest_check(app_configs=None, **kwargs) -> list[Error]:
    """Return an error when hashed static files are configured but were never collected."""
    if settings.DEBUG:
        return []  # the storage hands out plain names and WhiteNoise serves the apps' folders
    storage = storages["staticfiles"]
    if not isinstance(storage, ManifestFilesMixin):
        return []
    if storage.manifest_storage.exists(storage.manifest_name):
        return []
    manifest = os.path.join(settings.STATIC_ROOT, storage.manifest_name)
    return [
        Error(
            f"Static files were never collected: {manifest} is missing, so with DEBUG off every "
            "page would fail with 500 (Missing staticfiles manifest entry).",
            hint=f"Run `{COLLECTSTATIC}` with this environment (same STATIC_ROOT), once per release.",
            id="racing.E001",
        )
    ]


def exit_unless_ready_to_serve() -> None:
    """Exit with the reason and the remedy if the server could not serve its pages."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "racing.settings")
    import django

    django.setup()
    for error in static_manifest_check():
        sys.exit(f"Not starting: {error.msg}\n{error.hint}")
