"""The tests' way from async test code to the ORM: Channels' database_sync_to_async, without its leak.

Channels' version closes Django's connections around the call but outside the copy of the
context the function runs in, and Django's connections are context-local: a connection opened
in there was never given back to the pool (chat/core/db.py tells the same of the server's
worker threads), and the test database's teardown found that session still open. Here the
function closes them itself, in its own context; it still runs on asgiref's one shared thread.
"""

import functools
from collections.abc import Callable
from typing import Any

from asgiref.sync import sync_to_async
from django.db import close_old_connections


# As loosely typed as Channels' (an untyped package): the factories the tests wrap are untyped too.
def database_sync_to_async(func: Callable[..., Any]) -> Any:
    @functools.wraps(func)
    def closing_connections(*args: Any, **kwargs: Any) -> Any:
        close_old_connections()
        try:
            return func(*args, **kwargs)
        finally:
            close_old_connections()

    return sync_to_async(closing_connections, thread_sensitive=True)
