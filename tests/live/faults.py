"""Private PostgreSQL and Redis servers for fault tests: started, stopped and restarted by the test, never the shared ones.

PostgreSQL: a throw-away cluster (initdb) in a temporary directory on a free port,
run by pg_ctl from PG_BIN, as the `postgres` user when the suite runs as root (the
server refuses root). Redis: `redis-server --port <free> --save ""`.
"""

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import redis


def _pg_bin() -> Path:
    """PG_BIN, else the newest Debian PostgreSQL's bin directory."""
    if os.environ.get("PG_BIN"):
        return Path(os.environ["PG_BIN"])
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda path: int(path.parent.parent.name))
    return found[-1].parent if found else Path("/usr/lib/postgresql/15/bin")


PG_BIN = _pg_bin()
REDIS_SERVER = os.environ.get("REDIS_SERVER", shutil.which("redis-server") or "/usr/bin/redis-server")


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def available() -> str | None:
    """Why the private servers cannot run here, or None."""
    if not (PG_BIN / "initdb").exists():
        return f"no initdb in {PG_BIN} (set PG_BIN)"
    if not Path(REDIS_SERVER).exists():
        return "no redis-server (set REDIS_SERVER)"
    return None


class PrivatePostgres:
    """A PostgreSQL cluster of our own; `stop()` and `start()` simulate an outage."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="fault-pg-"))
        self.data = self.dir / "data"
        self.port = free_port()
        self.as_postgres = os.geteuid() == 0
        if self.as_postgres:
            shutil.chown(self.dir, "postgres", "postgres")
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8", "--locale=C.UTF-8")

    @property
    def url(self) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, tool: str, *args: str) -> None:
        command = [str(PG_BIN / tool), *args]
        if self.as_postgres:
            command = ["runuser", "-u", "postgres", "--", *command]
        subprocess.run(command, check=True, capture_output=True, timeout=60)

    def start(self) -> None:
        options = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off"
        self._run("pg_ctl", "-D", str(self.data), "-o", options, "-l", str(self.dir / "log"), "-w", "-t", "30", "start")

    def stop(self) -> None:
        """Stop at once, as a crash or a failover would: clients see their connections drop."""
        self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")

    def destroy(self) -> None:
        try:
            self.stop()
        except subprocess.CalledProcessError:
            pass  # not running
        shutil.rmtree(self.dir, ignore_errors=True)


class PrivateRedis:
    """A redis-server of our own, without persistence; `stop()` and `start()` simulate an outage."""

    def __init__(self) -> None:
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        command = [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while True:
            try:
                redis.Redis(port=self.port, socket_timeout=1).ping()
                return
            except redis.RedisError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self.process = None


@contextmanager
def private_services() -> Iterator[tuple[PrivatePostgres, PrivateRedis]]:
    """A running private PostgreSQL and Redis, removed on exit."""
    postgres, cache = PrivatePostgres(), PrivateRedis()
    try:
        postgres.start()
        cache.start()
        yield postgres, cache
    finally:
        cache.stop()
        postgres.destroy()
