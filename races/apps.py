from django.apps import AppConfig
from django.db.models.signals import post_save


class RacesConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "races"
    verbose_name = "Racing"

    def ready(self) -> None:
        from races.models import Race
        from races.receivers import race_loaded_raw

        post_save.connect(race_loaded_raw, sender=Race, dispatch_uid="races.race_loaded_raw")
