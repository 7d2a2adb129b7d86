"""The api_docs app: serves the API documents and registers the OpenAPI annotations of chat's views."""

from django.apps import AppConfig


class ApiDocsConfig(AppConfig):
    """Registers api_docs.openapi's drf-spectacular extensions at start-up."""

    name = "api_docs"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from api_docs import openapi  # noqa: F401  (importing registers the extensions)
