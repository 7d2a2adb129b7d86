from django.conf import settings
from django.contrib import admin
from django.contrib.staticfiles.views import serve as serve_static
from django.urls import include, path, re_path

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
if settings.SERVE_STATIC:
    # Daphne serves no files by itself (runserver's static handler is not in the ASGI app),
    # so the web client's assets come from here unless a reverse proxy serves them.
    urlpatterns += [re_path(r"^static/(?P<path>.+)$", serve_static, {"insecure": True})]
