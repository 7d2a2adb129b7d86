"""Start the servers under test (daphne, uvicorn or the stock baseline, 1..n processes) and read their CPU time and memory from /proc."""

import os
import resource
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
# Far above any scenario's send rate: the flood limit would otherwise answer 429 after 20 messages.
NO_RATE_LIMIT = "1000000000"


@dataclass(frozen=True)
class ServerConfig:
    """One configuration to measure: `<server>-<layer>-<processes>`, e.g. `daphne-pubsub-1`."""

    server: str
    layer: str
    processes: int

    @property
    def name(self) -> str:
        return f"{self.server}-{self.layer}-{self.processes}"

    @classmethod
    def parse(cls, text: str) -> "ServerConfig":
        usage = f"bad configuration {text!r}: expected <daphne|uvicorn|stock>-<core|pubsub>-<processes> or raw-memory-1"
        try:
            server, layer, processes = text.strip().split("-")
            config = cls(server=server, layer=layer, processes=int(processes))
        except ValueError as exc:
            raise ValueError(usage) from exc
        if config.server == "raw":
            # The ceiling (bench/raw.py) keeps everything in one process's memory: no layer, no second process.
            if config.layer != "memory" or config.processes != 1:
                raise ValueError(usage)
            return config
        if config.server not in {"daphne", "uvicorn", "stock"} or config.layer not in {"core", "pubsub"} or config.processes < 1:
            raise ValueError(usage)
        return config

    @property
    def django(self) -> bool:
        """Whether this configuration serves the project (database, users, HTTP API); the raw ceiling does not."""
        return self.server != "raw"


def raise_nofile_limit() -> int:
    """Raise this process's open-file limit to the hard limit (10,000 sockets need it); return the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        return hard
    return soft


def database_url(base_url: str, name: str) -> str:
    """The PostgreSQL URL of database `name` on the server of `base_url`."""
    parts = urlsplit(base_url)
    return urlunsplit(parts._replace(path=f"/{name}"))


def lock_database(base_url: str, name: str, *, wait: float = 900.0) -> Any:
    """Hold a PostgreSQL advisory lock for database `name` for the whole run; returns the connection holding it.

    Two runs on one database would drop it under each other (and skew each other's figures): a
    second run waits for the first, up to `wait` seconds.
    """
    import psycopg

    conn = psycopg.connect(database_url(base_url, "postgres"), autocommit=True)
    key = f"bench:{name}"
    deadline = time.monotonic() + wait
    warned = False
    while not (conn.execute("SELECT pg_try_advisory_lock(hashtext(%s))", (key,)).fetchone() or (False,))[0]:
        if time.monotonic() > deadline:
            conn.close()
            raise SystemExit(f"another bench run still holds database {name!r}: use --database to run beside it")
        if not warned:
            print(f"bench: another bench run is using database {name!r}: waiting for it", file=sys.stderr)
            warned = True
        time.sleep(2)
    return conn


def prepare_database(base_url: str, name: str, *, fresh: bool, source: Path = ROOT) -> str:
    """Create database `name` if missing (drop it first when `fresh`), migrate it, and return its URL."""
    import psycopg

    with psycopg.connect(database_url(base_url, "postgres"), autocommit=True) as conn:
        if fresh:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{name}"')
    url = database_url(base_url, name)
    env = dict(os.environ, DATABASE_URL=url, DJANGO_SETTINGS_MODULE="bench.settings", LOG_LEVEL="WARNING",
               PYTHONPATH=python_path(source))  # fmt: skip
    subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=source, env=env, check=True)
    return url


def maintain_database(url: str) -> str | None:
    """Do what PostgreSQL's autovacuum would have done by now, when this server runs without it.

    With autovacuum off (as on this project's CI machines) nothing ever vacuums or analyzes the
    bench's database: every scenario's connections and presences stay behind as dead rows that
    the next scenario's handshakes wade through (after a standard run, a user's live-connection
    count visited 443 dead index entries: 3.5 ms), and the tables are never analyzed. Production
    runs autovacuum. Between scenarios only: a scenario's own churn is part of what it measures.
    Returns what was done, or None.
    """
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        autovacuum = conn.execute("SHOW autovacuum").fetchone()
        if autovacuum and autovacuum[0] == "on":
            return None
        conn.execute("VACUUM (ANALYZE)")
    return "VACUUM (ANALYZE) before each scenario: the PostgreSQL server runs without autovacuum"


def python_path(source: Path) -> str:
    """The project under test first, then this checkout (for bench.settings when `source` is another tree)."""
    return os.pathsep.join(dict.fromkeys([str(source), str(ROOT)]))


def drop_redis_keys(redis_url: str, prefix: str) -> int:
    """Delete this run's keys (and only those) from the Redis database."""
    import redis

    client = redis.Redis.from_url(redis_url)
    deleted = 0
    batch: list[bytes] = []
    for key in client.scan_iter(match=f"{prefix}*", count=1000):
        batch.append(key)
        if len(batch) >= 1000:
            deleted += cast(int, client.delete(*batch))
            batch = []
    if batch:
        deleted += cast(int, client.delete(*batch))
    client.close()
    return deleted


def redis_observation(redis_url: str, prefix: str) -> dict[str, Any]:
    """What the layer left in Redis: pub/sub channels under our prefix mean the pub/sub layer, keys the core layer."""
    import redis

    client = redis.Redis.from_url(redis_url)
    try:
        # redis-py types the sync client's replies as "maybe awaitable".
        channels = len(cast(list[bytes], client.pubsub_channels(f"{prefix}*")))
        keys = sum(1 for _ in client.scan_iter(match=f"{prefix}*", count=1000))
        cpu = cast(dict[str, Any], client.info("cpu"))
    finally:
        client.close()
    return {
        "pubsub_channels": channels,
        "keys": keys,
        "redis_cpu_s": float(cpu.get("used_cpu_user", 0.0)) + float(cpu.get("used_cpu_sys", 0.0)),
    }


def _listening_socket(port: int = 0) -> socket.socket:
    """A loopback socket on `port` (0: a free one), already listening, to hand to the server by file descriptor."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    # SO_REUSEADDR: a restarted server binds its port again while the old connections sit in TIME_WAIT.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    # A burst of 10,000 connects must not overflow the accept queue (capped by net.core.somaxconn).
    sock.listen(4096)
    sock.set_inheritable(True)
    return sock


def parse_cpus(text: str) -> set[int]:
    """`0`, `0,2` or `0-3` -> a set of CPU numbers."""
    cpus: set[int] = set()
    for part in text.split(","):
        low, _, high = part.strip().partition("-")
        cpus.update(range(int(low), int(high or low) + 1))
    return cpus


def pin_to(cpus: set[int] | None) -> None:
    """Pin the calling process (and the threads it starts later) to `cpus`, as `taskset` would."""
    if cpus:
        os.sched_setaffinity(0, cpus)


def proc_cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (all its threads), from /proc/<pid>/stat."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # After the command name: state is fields[0], so utime (field 14) is fields[11] and stime fields[12].
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def machine_busy_cpu_seconds() -> float:
    """CPU time all cores spent on anything but idle and iowait since boot, from /proc/stat."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (fields + [0] * 8)[:8]
    return (user + nice + system + irq + softirq + steal) / CLK_TCK


def safe_cpu_seconds(pids: list[int]) -> float:
    """Summed CPU time of processes that may have exited meanwhile (those count as 0)."""
    total = 0.0
    for pid in pids:
        try:
            total += proc_cpu_seconds(pid)
        except (FileNotFoundError, ProcessLookupError):
            pass
    return total


def proc_rss_bytes(pid: int) -> int:
    """Resident set size of a process, from VmRSS in /proc/<pid>/status."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


class ServerGroup:
    """The server processes of one configuration, each on its own loopback port (clients spread over them)."""

    def __init__(self, config: ServerConfig, env: dict[str, str], log_dir: Path, source: Path = ROOT, cpus: set[int] | None = None) -> None:
        self.config = config
        self.source = source
        self.env = env
        self.log_dir = log_dir
        self.cpus = cpus  # pin every server process to these CPUs (--pin)
        self.procs: list[subprocess.Popen[bytes]] = []
        self.ports: list[int] = []

    def command(self, fd: int) -> list[str]:
        """The command line serving the project's ASGI app from an inherited listening socket."""
        if self.config.server == "raw":
            # The ceiling (bench/raw.py): raw `websockets`, in memory, one process.
            return [sys.executable, "-m", "bench.raw", "--fd", str(fd)]
        if self.config.server == "stock":
            # The baseline (bench/stock.py): stock daphne and stock Channels plumbing.
            return [str(VENV_BIN / "daphne"), "--fd", str(fd), "-v", "0", "bench.stock:application"]
        if self.config.server == "daphne":
            # The project's own daphne entry point (as `make run` serves) when it has one.
            entry = [sys.executable, "-m", "mysite.serve"] if (self.source / "mysite" / "serve.py").exists() else [
                str(VENV_BIN / "daphne")]  # fmt: skip
            # -v 0: no access log, which would cost server CPU per connection and is not what we measure.
            return [*entry, "--fd", str(fd), "-v", "0", "mysite.asgi:application"]
        return [
            str(VENV_BIN / "uvicorn"), "mysite.asgi:application", "--fd", str(fd), "--ws", "websockets-sansio",
            "--lifespan", "off", "--no-access-log", "--log-level", "warning", "--ws-ping-interval", "0",
        ]  # fmt: skip

    def start(self, timeout: float = 60.0) -> None:
        """Start every process and wait until each answers /healthz."""
        self.log_dir.mkdir(parents=True, exist_ok=True)
        for index in range(self.config.processes):
            proc, port = self._spawn(index, 0)
            self.ports.append(port)
            self.procs.append(proc)
        deadline = time.monotonic() + timeout
        for proc, port in zip(self.procs, self.ports, strict=True):
            self._wait_healthy(proc, port, deadline)

    def _spawn(self, index: int, port: int) -> tuple[subprocess.Popen[bytes], int]:
        sock = _listening_socket(port)
        log = open(self.log_dir / f"{self.config.name}-{index}.log", "ab")
        cpus = self.cpus

        def setup() -> None:
            raise_nofile_limit()
            pin_to(cpus)

        try:
            proc = subprocess.Popen(
                self.command(sock.fileno()),
                cwd=self.source,
                env=dict(self.env, PYTHONPATH=python_path(self.source)),
                stdout=log,
                stderr=subprocess.STDOUT,
                pass_fds=(sock.fileno(),),
                preexec_fn=setup,
                start_new_session=True,
            )
            return proc, sock.getsockname()[1]
        finally:
            log.close()
            sock.close()

    def terminate(self, index: int = 0, timeout: float = 15.0) -> tuple[float, bool]:
        """SIGTERM process `index` (a graceful shutdown), SIGKILL it if still running after `timeout` seconds;
        return the seconds until it exited and whether it had to be killed."""
        proc = self.procs[index]
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
            killed = False
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            killed = True
        return time.monotonic() - started, killed

    def start_again(self, index: int = 0, timeout: float = 60.0) -> None:
        """Start process `index` again on the same port (after `terminate`) and wait until it answers /healthz."""
        proc, port = self._spawn(index, self.ports[index])
        self.procs[index] = proc
        self._wait_healthy(proc, port, time.monotonic() + timeout)

    def _wait_healthy(self, proc: subprocess.Popen[bytes], port: int, deadline: float) -> None:
        url = f"http://127.0.0.1:{port}/healthz"
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"{self.config.name} server exited with {proc.returncode}: see {self.log_dir}")
            try:
                with urllib.request.urlopen(url, timeout=2) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.02)
        raise RuntimeError(f"{self.config.name} server on port {port} not healthy in time: see {self.log_dir}")

    @property
    def pids(self) -> list[int]:
        return [proc.pid for proc in self.procs]

    def alive(self) -> bool:
        return all(proc.poll() is None for proc in self.procs)

    def cpu_seconds(self) -> float:
        return sum(proc_cpu_seconds(pid) for pid in self.pids)

    def rss_bytes(self) -> int:
        return sum(proc_rss_bytes(pid) for pid in self.pids)

    def settle(self, *, idle_share: float = 0.05, window: float = 0.5, limit: float = 30.0) -> float:
        """Seconds until the servers' CPU use over `window` drops below `idle_share` of one core (capped at `limit`)."""
        start = time.monotonic()
        previous, previous_at = self.cpu_seconds(), start
        samples: list[tuple[float, float]] = [(previous_at, previous)]
        while True:
            time.sleep(0.05)
            now, cpu = time.monotonic(), self.cpu_seconds()
            samples.append((now, cpu))
            # The oldest sample still inside the window.
            while len(samples) > 2 and now - samples[1][0] >= window:
                samples.pop(0)
            first_at, first_cpu = samples[0]
            if now - first_at >= window and (cpu - first_cpu) / (now - first_at) < idle_share:
                return max(0.0, first_at - start)
            if now - start >= limit:
                return limit

    def stop(self) -> None:
        """SIGTERM, then SIGKILL whatever is still running after 10 s."""
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 10
        for proc in self.procs:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def server_env(
    *, config: ServerConfig, database_url: str, redis_url: str, redis_prefix: str, extra: dict[str, str] | None = None
) -> dict[str, str]:
    """The environment of the servers under test: production-like (DEBUG off), plain HTTP on loopback."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "PYTEST"))}
    env.update(
        DJANGO_SETTINGS_MODULE="bench.settings",
        DATABASE_URL=database_url,
        REDIS_URL=redis_url,
        REDIS_PREFIX=redis_prefix,
        CHANNEL_LAYER=config.layer,
        CHAT_MESSAGE_RATE_LIMIT=NO_RATE_LIMIT,
        # The §3 v2 caps guard against abusive clients; the bench is one client doing it on purpose.
        CHAT_MAX_CONNECTIONS_PER_USER=NO_RATE_LIMIT,
        CHAT_AUTH_RATE_LIMIT=NO_RATE_LIMIT,
        CHAT_ROOM_CREATE_RATE_LIMIT=NO_RATE_LIMIT,
        CHAT_WS_FRAME_RATE=NO_RATE_LIMIT,
        CHAT_WS_FRAME_BURST=NO_RATE_LIMIT,
        # DEBUG on would keep every SQL query in memory and slow each one down.
        DEBUG="false",
        SECRET_KEY=secrets.token_urlsafe(48),
        SECURE_SSL_REDIRECT="false",
        SESSION_COOKIE_SECURE="false",
        CSRF_COOKIE_SECURE="false",
        LOG_LEVEL="WARNING",
        PYTHONUNBUFFERED="1",
    )
    env.update(extra or {})
    return env


# Values that describe the configuration; SECRET_KEY and anything else stays out of the result file.
REPORTED_ENV = (
    "CHANNEL_LAYER", "CHAT_MESSAGE_RATE_LIMIT", "DEBUG", "DATABASE_URL", "REDIS_URL", "REDIS_PREFIX",
    "DJANGO_SETTINGS_MODULE",
)  # fmt: skip
