"""The project itself as an app, so that its system checks (racing/checks.py) are registered."""

from django.apps import AppConfig


class RacingConfig(AppConfig):
    name = "racing"
    verbose_name = "Race-day server"

    def ready(self) -> None:
        from racing import checks  # noqa: F401 - registers the checks
