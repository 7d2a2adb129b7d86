"""Every HTTP error under /api/ is JSON `{"detail": ...}`: DRF's exception handler, Django's error handlers, a middleware."""

import logging
from collections.abc import Callable
from http import HTTPStatus
from typing import Any

from asgiref.sync import iscoroutinefunction
from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils.decorators import sync_and_async_middleware
from django.views import defaults
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from chat.core.exceptions import ServiceUnavailable, is_outage
from chat.ops import metrics

logger = logging.getLogger(__name__)
API_PREFIX = "/api/"


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """DRF's handler, with an unreachable database or Redis answered 503 (and Retry-After) instead of 500."""
    if is_outage(exc):
        logger.warning("backing service unavailable: %r", exc)
        metrics.service_unavailable("http")
        exc = ServiceUnavailable()
    return drf_exception_handler(exc, context)


def json_error(status: int, detail: str | None = None, **headers: str) -> JsonResponse:
    """A JSON error response in DRF's shape."""
    return JsonResponse({"detail": detail or HTTPStatus(status).phrase}, status=status, headers=headers)


def _is_api(request: HttpRequest) -> bool:
    return request.path.startswith(API_PREFIX)


def bad_request(request: HttpRequest, exception: Exception, *args: Any, **kwargs: Any) -> HttpResponse:
    """handler400: a body over DATA_UPLOAD_MAX_MEMORY_SIZE is 413; under /api/ the answer is JSON."""
    if isinstance(exception, RequestDataTooBig):
        return json_error(413, "Request body too large.")
    if _is_api(request):
        return json_error(400, "Bad request.")
    return defaults.bad_request(request, exception)


def permission_denied(request: HttpRequest, exception: Exception, *args: Any, **kwargs: Any) -> HttpResponse:
    """handler403: JSON under /api/."""
    return json_error(403) if _is_api(request) else defaults.permission_denied(request, exception)


def page_not_found(request: HttpRequest, exception: Exception, *args: Any, **kwargs: Any) -> HttpResponse:
    """handler404: JSON under /api/."""
    return json_error(404, "Not found.") if _is_api(request) else defaults.page_not_found(request, exception)


def server_error(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
    """handler500: JSON under /api/, never a traceback."""
    return json_error(500, "Internal server error.") if _is_api(request) else defaults.server_error(request)


def _jsonify(request: HttpRequest, response: HttpResponse) -> HttpResponse:
    """Replace a non-JSON error under /api/ (e.g. DEBUG's HTML pages, a bare 405) by DRF's JSON shape."""
    if response.status_code < 400 or not _is_api(request) or response.get("Content-Type", "").startswith("application/json"):
        return response
    replacement = json_error(response.status_code)
    for header in ("Retry-After", "Allow", "WWW-Authenticate"):
        if header in response:
            replacement[header] = response[header]
    return replacement


@sync_and_async_middleware
def api_json_errors_middleware(get_response: Callable[[HttpRequest], Any]) -> Callable[[HttpRequest], Any]:
    """Outermost middleware: whatever produced an error under /api/, the client gets JSON."""
    if iscoroutinefunction(get_response):

        async def middleware(request: HttpRequest) -> HttpResponse:
            response = await get_response(request)
            return _jsonify(request, response)

        return middleware

    def sync_middleware(request: HttpRequest) -> HttpResponse:
        return _jsonify(request, get_response(request))

    return sync_middleware
