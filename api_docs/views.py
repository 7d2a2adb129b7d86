"""Serve the AsyncAPI document as YAML and as a readable HTML page (no external assets)."""

import functools
import html
import json
import re
from pathlib import Path
from typing import Any

import yaml
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils.safestring import SafeString, mark_safe
from django.views.decorators.http import require_safe
from markdown_it import MarkdownIt

ASYNCAPI_PATH = Path(__file__).resolve().parent / "asyncapi.yaml"
_REF = re.compile(r"&quot;\$ref&quot;: &quot;#/components/(schemas|messages)/([\w.-]+)&quot;")


@functools.cache
def _asyncapi_text() -> str:
    return ASYNCAPI_PATH.read_text(encoding="utf-8")


def _markdown(text: str | None) -> SafeString:
    """Markdown (CommonMark and tables, raw HTML escaped) as safe HTML."""
    return mark_safe(MarkdownIt("commonmark", {"html": False}).enable("table").render(text or ""))  # noqa: S308


def _schema_html(schema: Any) -> SafeString:
    """A schema as indented JSON, with each $ref a link to that component on the page."""
    escaped = html.escape(json.dumps(schema, indent=2, ensure_ascii=False))
    linked = _REF.sub(lambda m: f'&quot;$ref&quot;: <a href="#{m[1]}-{m[2]}">&quot;#/components/{m[1]}/{m[2]}&quot;</a>', escaped)
    return mark_safe(linked)  # noqa: S308  (escaped above; only our own anchors added)


def _message(document: dict[str, Any], ref: dict[str, str]) -> dict[str, Any]:
    """The component message a channel message reference points to, ready for the template."""
    channel_message = document["channels"]["room"]["messages"][ref["$ref"].rsplit("/", 1)[-1]]
    name = channel_message["$ref"].rsplit("/", 1)[-1]
    message = document["components"]["messages"][name]
    return {
        "id": name,
        "title": message.get("title", name),
        "summary": message.get("summary", ""),
        "payload": _schema_html(message["payload"]),
        "examples": [_schema_html(example["payload"]) for example in message.get("examples", [])],
    }


@functools.cache
def _page_context() -> dict[str, Any]:
    document = yaml.safe_load(_asyncapi_text())
    operations = []
    for name, operation in document["operations"].items():
        operations.append(
            {
                "name": name,
                "kind": "request" if operation["action"] == "receive" else "push",
                "summary": operation.get("summary", ""),
                "description": _markdown(operation.get("description")),
                "messages": [_message(document, ref) for ref in operation["messages"]],
                "replies": [_message(document, ref) for ref in operation.get("reply", {}).get("messages", [])],
            }
        )
    channel = document["channels"]["room"]
    return {
        "info": document["info"],
        "description": _markdown(document["info"].get("description")),
        "channel": channel,
        "servers": document["servers"],
        "security_schemes": document["components"]["securitySchemes"],
        "requests": [op for op in operations if op["kind"] == "request"],
        "pushes": [op for op in operations if op["kind"] == "push"],
        "schemas": [{"name": name, "schema": _schema_html(schema)} for name, schema in document["components"]["schemas"].items()],
        "close_codes": channel.get("x-close-codes", []),
    }


@require_safe
def asyncapi_yaml(request: HttpRequest) -> HttpResponse:
    """The AsyncAPI 3 document of the WebSocket API, as YAML."""
    return HttpResponse(_asyncapi_text(), content_type="application/yaml; charset=utf-8")


@require_safe
def asyncapi_page(request: HttpRequest) -> HttpResponse:
    """The AsyncAPI document rendered as one self-contained HTML page."""
    return render(request, "api_docs/asyncapi.html", _page_context())
