from django.apps import AppConfig
from django.conf import settings


class ChatConfig(AppConfig):
    """Rooms, messages and their real-time delivery."""

    default_auto_field = "django.db.models.BigAutoField"
    name = "chat"

    def ready(self) -> None:
        # Connected here, not by importing the consumer, so every process that writes
        # through the services publishes its events (shell, management commands, workers).
        from chat.events import signals, streams  # noqa: F401

        if "postgresql" in settings.DATABASES["default"]["ENGINE"]:
            from chat.core.db import retry_pool_connections_steadily

            retry_pool_connections_steadily()
