"""Cross-site WebSocket hijacking protection that still serves non-browser clients."""

from __future__ import annotations

from typing import Any

from channels.security.websocket import OriginValidator
from django.conf import settings


class BrowserOriginValidator(OriginValidator):
    """
    Refuse a WebSocket whose ``Origin`` names a host outside ``ALLOWED_HOSTS``.

    Browsers always send ``Origin``, so a page on another site cannot open a socket here. A
    client that sends none (the spec's Python example, a server-side feed consumer) cannot be
    a hijacked browser and is served; Channels' ``AllowedHostsOriginValidator`` would refuse it.
    """

    def __init__(self, application: Any) -> None:
        super().__init__(application, allowed_origins=[])

    @property  # read per connection, so the validator follows the settings it runs under
    def allowed_origins(self) -> list[str]:
        allowed_hosts = list(settings.ALLOWED_HOSTS)
        if settings.DEBUG and not allowed_hosts:
            allowed_hosts = ["localhost", "127.0.0.1", "[::1]"]
        return allowed_hosts

    @allowed_origins.setter
    def allowed_origins(self, value: list[str]) -> None:
        pass  # OriginValidator.__init__ assigns it; the settings are the only source

    def valid_origin(self, parsed_origin: Any) -> bool:
        if parsed_origin is None:
            return True
        return self.validate_origin(parsed_origin)
