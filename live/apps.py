from django.apps import AppConfig


class LiveConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "live"
    verbose_name = "Live race updates"

    def ready(self) -> None:
        from live import receivers
        from races import events

        events.odds_recorded.connect(receivers.broadcast_odds, dispatch_uid="live.broadcast_odds")
        events.result_declared.connect(receivers.broadcast_result, dispatch_uid="live.broadcast_result")
