from django.contrib import admin
from django.urls import include, path

from chat.ops import health, metrics

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/", include("chat.http.urls")),
    # OpenAPI schema and docs, AsyncAPI document and page (api_docs/PROTOCOL.md §4); public.
    path("api/", include("api_docs.urls")),
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("metrics", metrics.metrics_view, name="metrics"),
    # The built-in web client: rooms, room pages, online users, sign-up and login.
    path("", include("chat.web.urls")),
]
