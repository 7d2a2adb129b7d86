"""Bench users, made the way a client makes them: `POST /api/auth/register/`, then `POST /api/auth/token/`."""

import secrets
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import requests

RETRIES = 3


def register_users(base_url: str, prefix: str, count: int, *, threads: int = 8, progress: Callable[[int], None] | None = None) -> list[str]:
    """Register `count` users named `<prefix>u<i>` and return their API tokens, in order."""
    password = secrets.token_urlsafe(18)  # one per run; never written anywhere

    def post(session: requests.Session, path: str, body: dict[str, str], ok: int, ok_on_retry: int | None = None) -> requests.Response:
        # A shared PostgreSQL can briefly run out of connections ("too many clients"): retry 5xx a few times.
        for attempt in range(RETRIES + 1):
            response = session.post(f"{base_url}{path}", json=body, timeout=30)
            if attempt and response.status_code == ok_on_retry:
                return response
            if response.status_code == ok or response.status_code < 500 or attempt == RETRIES:
                break
            time.sleep(0.5 * 2**attempt)
        if response.status_code != ok:
            raise RuntimeError(f"{path} answered {response.status_code}: {response.text[:200]}")
        return response

    def one(index: int, session: requests.Session) -> str:
        credentials = {"username": f"{prefix}u{index}", "password": password}
        # A 400 on a retried register: the failed-looking first attempt did create the user.
        post(session, "/api/auth/register/", credentials, 201, ok_on_retry=400)
        response = post(session, "/api/auth/token/", credentials, 200)
        if progress:
            progress(1)
        return str(response.json()["token"])

    def chunk(indices: range) -> list[str]:
        with requests.Session() as session:
            return [one(index, session) for index in indices]

    threads = max(1, min(threads, count))
    step = -(-count // threads)
    with ThreadPoolExecutor(threads) as pool:
        parts = pool.map(chunk, [range(start, min(start + step, count)) for start in range(0, count, step)])
        return [token for part in parts for token in part]
