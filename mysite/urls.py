from django.contrib import admin
from django.urls import include, path

from chat.ops import health, metrics

# JSON under /api/ (chat/http/errors.py); Django's own pages elsewhere.
handler400 = "chat.http.errors.bad_request"
handler403 = "chat.http.errors.permission_denied"
handler404 = "chat.http.errors.page_not_found"
handler500 = "chat.http.errors.server_error"

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
