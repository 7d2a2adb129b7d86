"""/api/schema/ and /api/docs/ (OpenAPI) and /api/asyncapi.yaml, /api/asyncapi/ (AsyncAPI)."""

from pathlib import Path

import drf_spectacular_sidecar
from django.urls import path, re_path
from django.views.static import serve
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from api_docs import views

# The Swagger UI build from drf-spectacular-sidecar, served here so the docs work offline
# and without a separate static-file server (SPECTACULAR_SETTINGS points at this path).
SIDECAR_ASSETS = Path(drf_spectacular_sidecar.__file__).resolve().parent / "static" / "drf_spectacular_sidecar"

urlpatterns = [
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="swagger-ui"),
    re_path(r"^docs/assets/(?P<path>.+)$", serve, {"document_root": SIDECAR_ASSETS}, name="docs-assets"),
    path("asyncapi.yaml", views.asyncapi_yaml, name="asyncapi-yaml"),
    path("asyncapi/", views.asyncapi_page, name="asyncapi-page"),
]
