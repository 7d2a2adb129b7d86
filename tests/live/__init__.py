"""Real server processes for tests: start n daphne processes, talk to them over the network, stop or crash them.

The one live-server harness of the suite: `run_servers` starts daphne processes directly,
`run_cluster_script` starts them through scripts/run-cluster.sh (`make cluster`); both wait
for /healthz the same way and stop their processes with SIGTERM, then SIGKILL.

Typical use, inside a test that shares its (transactional) test database with the servers:

    @pytest.mark.live
    @pytest.mark.django_db(transaction=True)
    def test_something() -> None:
        with run_servers(2, {"CHAT_MESSAGE_RATE_LIMIT": "5"}) as (a, b):
            alice = register_user(a.base_url)
            requests.post(f"{b.base_url}/api/rooms/", json={"name": "x"}, headers=alice.headers, timeout=10)
            a.kill()  # SIGKILL on purpose: a crashed process

`run_servers` points the children at the running test's database (`shared_database_url()`)
and at the test process's Redis, unless `base_env` says otherwise (e.g. `minimal_env()`
for the embedded default). Each server's stdout/stderr go to files that failures print.
"""

import functools
import html
import itertools
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import requests

from tests import ROOT
from tests.contract import ContractWebSocket, contract_connect

# The interpreter running the suite is the project's .venv one; the servers use the same.
PYTHON = sys.executable
# Children allow far more posts than any test sends, unless a test asks for a limit.
UNLIMITED_RATE = "1000000"
PASSWORD = "a-long-pass-phrase-for-live-tests"
STARTUP_TIMEOUT_SECONDS = 60.0
STOP_TIMEOUT_SECONDS = 10.0
# How much of a server's output a failure message quotes.
LOG_TAIL_CHARS = 6000


def wait_for(condition: Callable[[], bool], *, timeout: float = 30.0, what: str = "condition") -> None:
    """Poll `condition` until it is true; fail after `timeout` seconds saying what was awaited."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.05)


def unique_name(prefix: str = "live") -> str:
    """A name no other test run uses (usernames, room names)."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def minimal_env(**extra: str) -> dict[str, str]:
    """An environment with only PATH and HOME (plus `extra`): the project's embedded defaults apply."""
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", "/root"), **extra}


def shared_database_url() -> str:
    """A DATABASE_URL for the database this test process is connected to (the test database inside a test)."""
    from django.db import connection

    db = connection.settings_dict
    engine = db["ENGINE"]
    if "postgresql" in engine:
        auth = quote(db["USER"] or "", safe="")
        if db["PASSWORD"]:
            auth += ":" + quote(db["PASSWORD"], safe="")
        host = db["HOST"] or "127.0.0.1"
        return f"postgres://{auth}@{host}:{db['PORT'] or 5432}/{quote(db['NAME'], safe='')}"
    if "sqlite" in engine:
        name = str(db["NAME"])
        if name == ":memory:" or "mode=memory" in name:
            raise RuntimeError(
                "live servers cannot share an in-memory SQLite test database: "
                "run with DATABASE_URL=postgres://... (as `make test` does) or set TEST_DATABASE_NAME to a file"
            )
        return f"sqlite:///{Path(name).resolve()}"
    raise RuntimeError(f"live servers do not know how to reach a {engine} database")


def service_env(**extra: str) -> dict[str, str]:
    """The environment for servers that share this test process's database, Redis and key prefix."""
    from django.conf import settings

    env = minimal_env(
        DATABASE_URL=shared_database_url(),
        REDIS_PREFIX=settings.REDIS_PREFIX,
        CHAT_MESSAGE_RATE_LIMIT=UNLIMITED_RATE,
        # Live tests play many clients from one address and user, faster than §3 lets one client go.
        CHAT_AUTH_RATE_LIMIT=UNLIMITED_RATE,
        CHAT_ROOM_CREATE_RATE_LIMIT=UNLIMITED_RATE,
        CHAT_MAX_CONNECTIONS_PER_USER=UNLIMITED_RATE,
        CHAT_WS_FRAME_RATE=UNLIMITED_RATE,
        CHAT_WS_FRAME_BURST=UNLIMITED_RATE,
        PYTHONUNBUFFERED="1",
    )
    if settings.REDIS_URL:
        env["REDIS_URL"] = settings.REDIS_URL
    env.update(extra)
    return env


def answers_health(base_url: str) -> bool:
    """Whether GET /healthz answers 200 right now."""
    try:
        return requests.get(f"{base_url}/healthz", timeout=2).status_code == 200
    except requests.RequestException:
        return False


def stop_process_group(process: subprocess.Popen[bytes], timeout: float = STOP_TIMEOUT_SECONDS) -> int:
    """SIGTERM the process's group (graceful shutdown), SIGKILL it if still running after `timeout`; the exit code."""
    if process.poll() is None:
        try:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return process.wait()


def free_port() -> int:
    """A loopback port free right now (for a process that binds it itself, unlike LiveServer's inherited socket)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _listening_socket() -> socket.socket:
    """A socket listening on a free loopback port; the server inherits it, so no other process can take the port."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


class LiveServer:
    """One daphne process serving mysite.asgi:application on 127.0.0.1, as `make run` serves it."""

    def __init__(self, env: Mapping[str, str], log_dir: Path, name: str = "server") -> None:
        self.name = name
        self.env = dict(env)
        self.stdout_path = log_dir / f"{name}.stdout.log"
        self.stderr_path = log_dir / f"{name}.stderr.log"
        sock = _listening_socket()
        self.port: int = sock.getsockname()[1]
        # `python -m mysite.serve` is daphne's own command line with the project's scrubbed access log.
        command = [PYTHON, "-m", "mysite.serve", "--fd", str(sock.fileno()), "mysite.asgi:application"]
        with open(self.stdout_path, "wb") as stdout, open(self.stderr_path, "wb") as stderr:
            self.process = subprocess.Popen(
                command,
                cwd=ROOT,
                env=self.env,
                stdout=stdout,
                stderr=stderr,
                pass_fds=(sock.fileno(),),
                start_new_session=True,
            )
        sock.close()

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        """The chat WebSocket endpoint (api_docs/PROTOCOL.md §2)."""
        return f"ws://127.0.0.1:{self.port}/ws/chat/room/"

    def alive(self) -> bool:
        return self.process.poll() is None

    def output(self) -> str:
        """The tail of the server's stderr and stdout, for failure messages."""
        parts = []
        for path in (self.stderr_path, self.stdout_path):
            text = path.read_text(errors="replace") if path.exists() else ""
            parts.append(f"--- {path.name} ---\n{text[-LOG_TAIL_CHARS:]}")
        return "\n".join(parts)

    def wait_healthy(self, timeout: float = STARTUP_TIMEOUT_SECONDS) -> None:
        """Wait until GET /healthz answers 200; fail with the server's output if it exits or does not answer."""
        deadline = time.monotonic() + timeout
        while True:
            if not self.alive():
                raise AssertionError(
                    f"{self.name} (pid {self.pid}) exited with {self.process.returncode} before answering\n{self.output()}"
                )
            if answers_health(self.base_url):
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.name} did not answer /healthz within {timeout:.0f} s\n{self.output()}")
            time.sleep(0.1)

    def kill(self) -> None:
        """SIGKILL the process, as a crash would: no cleanup runs."""
        if self.alive():
            os.killpg(self.pid, signal.SIGKILL)
        self.process.wait()

    def stop(self, timeout: float = STOP_TIMEOUT_SECONDS) -> int:
        """SIGTERM (graceful shutdown), then SIGKILL if still running after `timeout`; returns the exit code."""
        return stop_process_group(self.process, timeout)


@contextmanager
def run_servers(
    n: int = 1,
    env_overrides: Mapping[str, str | None] | None = None,
    *,
    base_env: Mapping[str, str] | None = None,
    timeout: float = STARTUP_TIMEOUT_SECONDS,
    log_dir: Path | None = None,
) -> Iterator[list[LiveServer]]:
    """Start `n` servers, wait until each answers /healthz, yield them, and stop them on exit.

    The environment is `base_env` (default: `service_env()`, i.e. the test database and
    Redis) updated with `env_overrides`, where None removes a variable.
    """
    env = dict(service_env() if base_env is None else base_env)
    for key, value in (env_overrides or {}).items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    temp = None
    if log_dir is None:
        temp = tempfile.TemporaryDirectory(prefix="live-servers-")
        log_dir = Path(temp.name)
    servers: list[LiveServer] = []
    try:
        for index in range(n):
            servers.append(LiveServer(env, log_dir, name=f"server-{index}"))
        for server in servers:
            server.wait_healthy(timeout)
        yield servers
    finally:
        for server in servers:
            server.stop()
        if temp is not None:
            temp.cleanup()


class ScriptCluster:
    """The server processes scripts/run-cluster.sh started, their URLs and their JSON log lines."""

    def __init__(self, process: subprocess.Popen[bytes], ports: list[int], base: Path) -> None:
        self.process = process
        self.urls = [f"http://127.0.0.1:{port}" for port in ports]
        self.log_dir = base / "logs"
        self.output_path = base / "run-cluster.out"

    def log_lines(self) -> list[str]:
        """Every line the processes logged so far (one JSON object each, LOG_FORMAT=json)."""
        return [line for path in sorted(self.log_dir.glob("*.log")) for line in path.read_text().splitlines()]

    def output(self) -> str:
        """The tail of the script's own output, for failure messages."""
        return self.output_path.read_text(errors="replace")[-LOG_TAIL_CHARS:] if self.output_path.exists() else ""


@contextmanager
def run_cluster_script(
    env: Mapping[str, str], base: Path, *, n: int = 2, timeout: float = STARTUP_TIMEOUT_SECONDS
) -> Iterator[ScriptCluster]:
    """Run scripts/run-cluster.sh with `n` processes (files under `base`), wait until each answers /healthz, stop it on exit.

    `env` is the script's whole environment; CLUSTER_PORTS, CLUSTER_DIR and LOG_DIR are set here.
    """
    ports = [free_port() for _ in range(n)]
    env = {**env, "CLUSTER_PORTS": " ".join(map(str, ports)), "CLUSTER_DIR": str(base), "LOG_DIR": str(base / "logs")}
    with open(base / "run-cluster.out", "wb") as out:
        process = subprocess.Popen(
            ["scripts/run-cluster.sh"], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    cluster = ScriptCluster(process, ports, base)

    def up_or_exited(url: str) -> bool:
        return process.poll() is not None or answers_health(url)

    try:
        for url in cluster.urls:
            wait_for(functools.partial(up_or_exited, url), timeout=timeout, what=f"{url} to answer")
            assert process.poll() is None, f"run-cluster.sh exited with {process.returncode}\n{cluster.output()}"
        yield cluster
    finally:
        stop_process_group(process, timeout=15)


def explain(response: requests.Response) -> str:
    """A short account of an unexpected response for an assertion message (Django's debug page boiled down)."""
    text = response.text
    found = re.search(r'<pre class="exception_value">(.*?)</pre>', text, re.S)
    if found:
        kind = re.search(r"<title>\s*(\S+)", text)
        text = f"{kind.group(1) if kind else 'error'}: {html.unescape(found.group(1)).strip()}"
    return f"{response.request.method} {response.url} -> {response.status_code}: {text[:500]}"


@dataclass
class LiveUser:
    """A user registered over HTTP, with its API token."""

    id: int
    username: str
    password: str
    token: str

    @property
    def headers(self) -> dict[str, str]:
        """HTTP headers authenticating as this user."""
        return {"Authorization": f"Token {self.token}"}


def register_user(base_url: str, username: str | None = None, password: str = PASSWORD) -> LiveUser:
    """Register a user and fetch its token through the public HTTP API."""
    username = username or unique_name("user")
    response = requests.post(f"{base_url}/api/auth/register/", json={"username": username, "password": password}, timeout=15)
    assert response.status_code == 201, explain(response)
    user_id = response.json()["id"]
    response = requests.post(f"{base_url}/api/auth/token/", json={"username": username, "password": password}, timeout=15)
    assert response.status_code == 200, explain(response)
    return LiveUser(id=user_id, username=username, password=password, token=response.json()["token"])


def create_room(base_url: str, user: LiveUser, name: str | None = None) -> dict:
    """Create a room over HTTP as `user` (its host and first member); returns the Room JSON."""
    response = requests.post(f"{base_url}/api/rooms/", json={"name": name or unique_name("room")}, headers=user.headers, timeout=15)
    assert response.status_code == 201, explain(response)
    return response.json()


# --- WebSocket helpers shared by the live tests (every frame checked against asyncapi.yaml) ---------------

_request_ids = itertools.count(1)


@asynccontextmanager
async def ws(server: LiveServer, user: LiveUser, **kwargs: Any) -> AsyncIterator[ContractWebSocket]:
    """A token WebSocket to a live server, its frames checked against the contract."""
    async with contract_connect(f"{server.ws_url}?token={user.token}", **kwargs) as connection:
        yield connection


async def call(client: ContractWebSocket, action: str, **params: Any) -> dict[str, Any]:
    """One request that must succeed; its response."""
    response = await client.request(action, request_id=params.pop("request_id", f"q{next(_request_ids)}"), **params)
    assert response["response_status"] < 400, response
    return response


async def next_push(client: ContractWebSocket, action: str, timeout: float = 5) -> dict[str, Any]:
    """The next push with this action (earlier buffered ones first), skipping other pushes."""
    pushes = getattr(client, "pushes", [])
    while pushes:
        frame = pushes.pop(0)
        if frame.get("action") == action:
            return frame
    deadline = time.monotonic() + timeout
    while True:
        frame = await client.receive_json_from(timeout=max(0.01, deadline - time.monotonic()))
        if frame.get("action") == action and "response_status" not in frame:
            return frame
