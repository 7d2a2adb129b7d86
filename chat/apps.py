from django.apps import AppConfig


class ChatConfig(AppConfig):
    """Rooms, messages and their real-time delivery."""

    default_auto_field = "django.db.models.BigAutoField"
    name = "chat"

    def ready(self) -> None:
        from chat.events import signals  # noqa: F401  (connects the receivers)
