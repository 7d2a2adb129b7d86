"""The API documents: AsyncAPI validity, OpenAPI validity and coverage, and the pages that serve them."""

import hashlib
import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from django.core.management import call_command
from django.http import StreamingHttpResponse
from django.test import Client

from tests import ROOT
from tests.contract import asyncapi_document

API_DOCS = ROOT / "api_docs"
ASYNCAPI_SCHEMA_SHA256 = "d4571a420e6ffb7fcc7066c95a6db1202f299a3c51daa103d0706bf30f95e626"


class _NoDuplicatesLoader(yaml.SafeLoader):
    """YAML silently keeps the last of two equal keys; in an API document that hides an operation."""

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        keys = [self.construct_object(key, deep=deep) for key, _ in node.value]
        duplicates = {key for key in keys if keys.count(key) > 1}
        assert not duplicates, f"duplicate keys {duplicates} at line {node.start_mark.line + 1}"
        return super().construct_mapping(node, deep)


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        return ([node["$ref"]] if isinstance(node.get("$ref"), str) else []) + [r for v in node.values() for r in _refs(v)]
    if isinstance(node, list):
        return [r for v in node for r in _refs(v)]
    return []


def _resolve(document: dict[str, Any], ref: str) -> Any:
    node: Any = document
    for part in ref.removeprefix("#/").split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


# --- AsyncAPI ------------------------------------------------------------------------


def test_vendored_asyncapi_schema_is_the_published_one() -> None:
    content = (API_DOCS / "schemas" / "asyncapi-3.0.0.json").read_bytes()
    assert hashlib.sha256(content).hexdigest() == ASYNCAPI_SCHEMA_SHA256


def test_asyncapi_document_is_valid_asyncapi_3() -> None:
    document = yaml.load((API_DOCS / "asyncapi.yaml").read_text(encoding="utf-8"), Loader=_NoDuplicatesLoader)
    assert document["asyncapi"] == "3.0.0"
    schema = json.loads((API_DOCS / "schemas" / "asyncapi-3.0.0.json").read_text(encoding="utf-8"))
    errors = sorted(jsonschema.Draft7Validator(schema).iter_errors(document), key=lambda e: list(e.absolute_path))
    assert not errors, "\n".join(f"{list(e.absolute_path)}: {e.message[:300]}" for e in errors)


def test_asyncapi_validation_catches_a_broken_document() -> None:
    """The official schema really is applied: an invalid operation action is rejected."""
    document = json.loads(json.dumps(asyncapi_document()))
    document["operations"]["list"]["action"] = "publish"  # AsyncAPI 2 wording, invalid in 3
    schema = json.loads((API_DOCS / "schemas" / "asyncapi-3.0.0.json").read_text(encoding="utf-8"))
    assert list(jsonschema.Draft7Validator(schema).iter_errors(document))


def test_every_ref_resolves_and_operations_use_their_channels_messages() -> None:
    document = asyncapi_document()
    for ref in _refs(document):
        assert ref.startswith("#/"), ref
        _resolve(document, ref)
    for name, operation in document["operations"].items():
        for ref in [*operation["messages"], *operation.get("reply", {}).get("messages", [])]:
            assert ref["$ref"].startswith("#/channels/room/messages/"), (name, ref)


def test_every_component_message_has_a_valid_json_schema_payload_and_valid_examples() -> None:
    document = asyncapi_document()
    for name, message in document["components"]["messages"].items():
        jsonschema.Draft7Validator.check_schema(message["payload"])
        for example in message.get("examples", []):
            from tests.contract import _validator

            errors = list(_validator(f"/components/messages/{name}/payload").iter_errors(example["payload"]))
            assert not errors, (name, [e.message for e in errors])


def test_asyncapi_documents_the_close_codes_and_auth_schemes() -> None:
    document = asyncapi_document()
    codes = {entry["code"] for entry in document["channels"]["room"]["x-close-codes"]}
    assert {1001, 1003, 1009, 4008, 4401} <= codes
    schemes = document["components"]["securitySchemes"]
    assert {(s["in"], s["name"]) for s in schemes.values()} == {("header", "Authorization"), ("query", "token"), ("cookie", "sessionid")}
    assert "after_seq" in document["info"]["description"] and "retry_after" in document["info"]["description"]


# --- OpenAPI -------------------------------------------------------------------------


def test_openapi_schema_validates_without_warnings(tmp_path: Path) -> None:
    out = tmp_path / "schema.yaml"
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(out))
    schema = yaml.safe_load(out.read_text(encoding="utf-8"))
    assert schema["openapi"].startswith("3.")


@pytest.mark.django_db
def test_openapi_covers_every_http_endpoint_with_its_errors() -> None:
    response = Client().get("/api/schema/?format=json")
    assert response.status_code == 200
    paths = json.loads(response.content)["paths"]
    expected = {
        ("/api/auth/register/", "post"): {"201", "400"},
        ("/api/auth/token/", "post"): {"200", "400"},
        ("/api/users/me/", "get"): {"200", "401"},
        ("/api/rooms/", "get"): {"200", "400", "401"},
        ("/api/rooms/", "post"): {"201", "400", "401"},
        ("/api/rooms/{id}/", "get"): {"200", "401", "404"},
        ("/api/rooms/{id}/", "patch"): {"200", "400", "401", "403", "404"},
        ("/api/rooms/{id}/", "delete"): {"204", "401", "403", "404"},
        ("/api/rooms/{id}/join/", "post"): {"200", "401", "404"},
        ("/api/rooms/{id}/leave/", "post"): {"204", "401", "403", "404"},
        ("/api/rooms/{id}/messages/", "get"): {"200", "400", "401", "404"},
        ("/api/rooms/{id}/messages/", "post"): {"200", "201", "400", "401", "403", "404", "429"},
        ("/api/messages/{id}/", "patch"): {"200", "400", "401", "403", "404"},
        ("/api/messages/{id}/", "delete"): {"204", "401", "403", "404"},
    }
    for (path, method), codes in expected.items():
        assert codes <= set(paths[path][method]["responses"]), (path, method, sorted(paths[path][method]["responses"]))
    room_page = paths["/api/rooms/"]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
    assert room_page == {"$ref": "#/components/schemas/RoomPage"}


@pytest.mark.django_db
def test_swagger_ui_loads_only_local_assets_and_they_are_served() -> None:
    client = Client()
    page = client.get("/api/docs/")
    assert page.status_code == 200
    html = page.content.decode()
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", html), "an external asset"
    assets = re.findall(r"""(?:src|href)="(/[^"]+)\"""", html)
    assert any(a.endswith("swagger-ui-bundle.js") for a in assets), assets
    for asset in assets:
        response = client.get(asset)
        assert response.status_code == 200, asset
        assert isinstance(response, StreamingHttpResponse), asset
        assert b"".join(response.streaming_content), asset


# --- AsyncAPI endpoints ----------------------------------------------------------------


@pytest.mark.django_db
def test_asyncapi_yaml_is_served_without_authentication() -> None:
    response = Client().get("/api/asyncapi.yaml")
    assert response.status_code == 200
    assert response["Content-Type"].split(";")[0] in ("application/yaml", "text/yaml")
    assert yaml.safe_load(response.content) == asyncapi_document()


@pytest.mark.django_db
def test_asyncapi_page_renders_every_operation_with_no_external_assets() -> None:
    response = Client().get("/api/asyncapi/")
    assert response.status_code == 200
    html = response.content.decode()
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", html), "an external asset"
    assert "<script" not in html
    for name in asyncapi_document()["operations"]:
        assert f'id="op-{name}"' in html, name
    for name in ("User", "Room", "Message"):
        assert f'id="schemas-{name}"' in html
    assert "4401" in html and "after_seq" in html
