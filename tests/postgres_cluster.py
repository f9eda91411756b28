"""A private PostgreSQL cluster for the tests, on a free loopback port (never 5432).

Debian keeps the server binaries off the PATH, in ``/usr/lib/postgresql/<major>/bin``, and
``initdb`` refuses to run as root: as root the cluster is made and run by the ``postgres``
user, in a temporary folder that user owns.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest

#: The database every test's migrated database is copied from.
TEMPLATE = "jobordre_template"
#: Where Debian's postgresql-<major> packages put initdb and pg_ctl.
DEBIAN_BIN = Path("/usr/lib/postgresql")


def server_bin() -> Path:
    """The folder holding ``initdb`` and ``pg_ctl``; fails the test saying what to install."""
    found = shutil.which("initdb")
    if found:
        return Path(found).parent
    versions = sorted(
        (path for path in DEBIAN_BIN.glob("*/bin") if (path / "initdb").exists()),
        key=lambda path: int(path.parent.name) if path.parent.name.isdigit() else 0,
    )
    if versions:
        return versions[-1]
    pytest.fail(
        "the PostgreSQL server is not installed: install it (Debian/Ubuntu: apt-get install "
        "postgresql); the README's test command does this for you"
    )


@dataclass
class PostgresCluster:
    """One running cluster; :meth:`fresh_database` makes an empty database per test."""

    port: int
    datadir: Path
    bin: Path
    user: str | None
    _template_ready: bool = False

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://jobordre:jobordre@127.0.0.1:{self.port}/{database}"

    def fresh_database(self, *, migrated: bool = True) -> str:
        """The URL of a new database: migrated (a copy of a template migrated once per
        session, which is much faster than migrating each), or empty."""
        name = "t_" + uuid.uuid4().hex[:16]
        with psycopg.connect(self.url(), autocommit=True) as conn:
            if migrated:
                if not self._template_ready:
                    self._make_template(conn)
                conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{TEMPLATE}"')
            else:
                conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def _make_template(self, conn: psycopg.Connection[Any]) -> None:
        from shared.store import open_url

        conn.execute(f'CREATE DATABASE "{TEMPLATE}"')
        open_url(self.url(TEMPLATE)).close()
        self._template_ready = True

    def _run(self, *args: str) -> subprocess.CompletedProcess[str]:
        command = [*args] if self.user is None else ["runuser", "-u", self.user, "--", *args]
        return subprocess.run(command, capture_output=True, text=True, check=False, timeout=60)

    def stop(self) -> None:
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.datadir), "-m", "immediate", "stop")


def start_cluster(
    port: int, *, listen: Sequence[str] = ("127.0.0.1",), clients: Sequence[str] = ()
) -> PostgresCluster:
    """initdb a cluster in a temporary folder and start it on ``127.0.0.1:port``.

    ``listen`` are the addresses it listens on; ``clients`` are networks (CIDR) besides
    loopback allowed to log in with the password, such as test network namespaces.
    """
    binaries = server_bin()
    user = "postgres" if os.geteuid() == 0 else None
    root = Path(tempfile.mkdtemp(prefix="jobordre-pg-"))
    if user is not None:
        entry = pwd.getpwnam(user)
        os.chown(root, entry.pw_uid, entry.pw_gid)
    datadir = root / "data"
    cluster = PostgresCluster(port, datadir, binaries, user)
    password = root / "password"
    password.write_text("jobordre\n")
    if user is not None:
        os.chown(password, entry.pw_uid, entry.pw_gid)
    made = cluster._run(
        str(binaries / "initdb"),
        "-D",
        str(datadir),
        "-U",
        "jobordre",
        "--pwfile",
        str(password),
        "-A",
        "scram-sha-256",
        "-E",
        "UTF8",
        "--locale",
        "C.UTF-8",
        "--no-sync",
    )
    if made.returncode != 0:
        pytest.fail(f"initdb failed: {made.stdout}{made.stderr}")
    if clients:
        with (datadir / "pg_hba.conf").open("a") as hba:
            hba.writelines(f"host all all {network} scram-sha-256\n" for network in clients)
    # Tests need durability of nothing: fsync off keeps the shared machine's disk quiet.
    options = (
        f"-c listen_addresses={','.join(listen)} -c port={port}"
        f" -c unix_socket_directories={root}"
        " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        " -c max_connections=200 -c shared_buffers=32MB"
    )
    started = cluster._run(
        str(binaries / "pg_ctl"),
        "-D",
        str(datadir),
        "-l",
        str(root / "log"),
        "-o",
        options,
        "-w",
        "-t",
        "60",
        "start",
    )
    if started.returncode != 0:
        log = (root / "log").read_text() if (root / "log").exists() else ""
        pytest.fail(f"pg_ctl start failed: {started.stdout}{started.stderr}{log}")
    return cluster
