"""Helpers for the §7/§8 tests (replies, reactions, search, accounts): HTTP calls from async tests, private rooms, query counting."""

import contextlib
from collections.abc import Iterator
from typing import Any

import pytest
from django.db.backends.utils import CursorWrapper

from tests.conftest import client_for
from tests.db import database_sync_to_async


@database_sync_to_async
def http(user: Any, method: str, path: str, data: Any = None) -> tuple[int, Any]:
    """One HTTP API call as the user (token auth): the status and the JSON body (None when empty)."""
    response = getattr(client_for(user), method)(path, data, format="json") if data is not None else getattr(client_for(user), method)(path)
    return response.status_code, (response.json() if response.content else None)


@contextlib.contextmanager
def statements_on_every_thread(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """The SQL every database connection runs meanwhile, whatever thread it is on (WebSocket actions run on worker threads)."""
    seen: list[str] = []
    original = CursorWrapper.execute

    def execute(self: CursorWrapper, sql: str, params: Any = None) -> Any:
        seen.append(sql)
        return original(self, sql, params)

    monkeypatch.setattr(CursorWrapper, "execute", execute)
    yield seen
    monkeypatch.setattr(CursorWrapper, "execute", original)
