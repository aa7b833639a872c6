from django.apps import AppConfig


class LiveConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "live"
    verbose_name = "Live race updates"

    def ready(self) -> None:
        # The one place where live's packages meet each other and the racing domain.
        from live.market.admin_actions import start_simulation
        from live.market.supervisor import simulation_viewers
        from live.protocol import presence, receivers
        from races import events
        from races.admin import race_admin_action_add

        events.update_logged.connect(receivers.broadcast_update, dispatch_uid="live.broadcast_update")
        presence.listen(simulation_viewers)
        race_admin_action_add(start_simulation)
