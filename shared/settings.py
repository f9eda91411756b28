"""The one settings object, read once from ``JOBORDRE_*`` environment variables.

Every tunable has its unit in its name. The README's "Environment variables" table lists
them; ``Settings.model_fields`` is the source of truth.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

import platformdirs
from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.errors import InvalidInput
from shared.redis_url import check_redis_url


def _default_home() -> Path:
    return Path(platformdirs.user_data_dir("jobordre", appauthor=False))


class Settings(BaseSettings):
    """Configuration of one jobordre process (worker, client, CLI or notifier)."""

    model_config = SettingsConfigDict(env_prefix="JOBORDRE_", extra="ignore", frozen=True)

    #: Data folder: the SQLite file and the embedded broker's address live here.
    home: Path = Field(default_factory=_default_home)
    #: SQLite file of the foundation's store; defaults to ``<home>/jobordre.db``.
    db: Path | None = None
    #: PostgreSQL store (``postgresql://user:pass@host:5432/db``) for workers on several
    #: hosts; unset = the SQLite file at ``db``.
    database_url: str | None = None
    #: Key file (mode 0600) the store's signing secrets are wrapped under, so that a copy of
    #: the store alone cannot sign (shared/store/secrets_at_rest.py); the same file on every
    #: host of one store. Unset: ``<db>.secrets.key`` beside a SQLite store; PostgreSQL
    #: keeps them unwrapped.
    store_secrets_key_file: Path | None = None
    #: Most connections one process keeps open to PostgreSQL (worker threads share them).
    database_pool_size: int = Field(default=10, ge=1, le=256)
    #: PostgreSQL write transactions one worker process runs at once: its batch of write
    #: commands is cut into this many parts by order (each waits for its own round trips
    #: to the database); at most the pool size. SQLite has one writer at a time.
    database_write_transactions: int = Field(default=4, ge=1, le=64)
    #: Redis URL (``redis://``, ``rediss://``, ``unix://``, with password), or a Sentinel
    #: deployment (``redis+sentinel://h1:26379,h2:26379/MASTER/DB``, shared/redis_url.py);
    #: unset = the embedded broker.
    redis_url: str | None = None
    #: Namespace of every Redis key jobordre writes besides Dramatiq's own.
    redis_prefix: str = "jobordre"
    #: How often ``jobordre up``'s broker fsyncs its append-only file: ``everysec`` (a
    #: killed process loses nothing, a power loss at most a second) or ``always``.
    embedded_appendfsync: Literal["everysec", "always"] = "everysec"

    #: Worker processes started by ``jobordre worker`` (``up`` always runs one).
    worker_processes: int = Field(default=1, ge=1, le=64)
    #: Worker threads per process.
    worker_threads: int = Field(default=8, ge=1, le=256)
    #: How long an idle consumer waits on its empty queue before it looks again, and an
    #: idle worker thread for work, in milliseconds. A message wakes a waiting consumer at
    #: once (workers/transport/broker.py), so this sets the idle cost, not the latency.
    worker_poll_ms: int = Field(default=1_000, ge=1, le=5000)
    #: How long SIGTERM lets running jobs finish before the worker stops, in milliseconds.
    worker_shutdown_ms: int = Field(default=30_000, ge=0)
    #: Most write commands one transaction of a worker process carries (group commit,
    #: ``shared/store/group_commit.py``); 1 gives every command a transaction of its own.
    group_commit_max_writes: int = Field(default=64, ge=1, le=1024)

    #: How often a job that failed on infrastructure (Redis, a busy store) is retried.
    max_retries: int = Field(default=5, ge=0, le=100)
    #: First retry backoff, in milliseconds (doubles each try, with jitter).
    min_backoff_ms: int = Field(default=200, ge=1)
    #: Longest retry backoff, in milliseconds.
    max_backoff_ms: int = Field(default=60_000, ge=1)

    #: How long a client waits for a command's result before reporting ``unavailable``.
    reply_timeout_ms: int = Field(default=30_000, ge=1)
    #: How long a result waits in Redis for its client, in milliseconds. The command
    #: ledger keeps it for good: resending the same command id returns it again.
    reply_ttl_ms: int = Field(default=24 * 3600 * 1000, ge=1000)

    #: How long SQLite waits for a lock before reporting busy, in milliseconds.
    sqlite_busy_timeout_ms: int = Field(default=10_000, ge=0)

    #: Folder of the organisations' signing-key files (``<kind>_<id>.key``); default
    #: ``<home>/keys``.
    key_dir: Path | None = None
    #: A client's signing-key file, if it is not in ``key_dir`` (a protocol 2 key file,
    #: ``"v": 2``, makes the client speak protocol 2).
    key_file: Path | None = None
    #: The foundation's protocol 2 key file (its Ed25519 and X25519 private keys, mode
    #: 0600, outside the store); unset = ``<home>/foundation.v2.key``, made on first use.
    foundation_key_file: Path | None = None
    #: Oldest a signed command may be when a worker takes it, in milliseconds; older ones
    #: are refused as expired (a replay outside the window). Covers queueing and retries.
    signature_max_age_ms: int = Field(default=15 * 60 * 1000, ge=1000)

    #: Oldest a kept command may be, from its ``sent_at`` to the moment ``jobordre dead
    #: retry`` re-signs it, in milliseconds; an older one is the organisation's to resend.
    #: Reads are retried only inside ``signature_max_age_ms``.
    dead_retry_max_age_ms: int = Field(default=24 * 3600 * 1000, ge=1000)

    #: Days after an order closed that its placements keep the person's CPR and comments;
    #: then the scheduled job anonymises them (the placements and the log stay).
    cpr_retention_days: int = Field(default=365, ge=0)

    #: Whether a worker pushes a change's events to Redis right after the commit. Off, only
    #: the relay's sweep pushes them (fewer, larger pushes; events arrive up to one sweep
    #: later).
    relay_push_on_commit: bool = True
    #: How often each worker sweeps the outbox for events not yet pushed (after a crash
    #: between commit and push, or while Redis was away), in milliseconds.
    relay_interval_ms: int = Field(default=1_000, ge=10)
    #: Whether the relay also pushes each event's whole header (title, status, who) onto
    #: the one stream ``<prefix>:events`` every reader may read (protocol § 9). The
    #: per-audience wake-up streams (``<prefix>:headers:<audience>``) are always pushed
    #: and are all the notifier and ``inbox --follow`` read; turn this off where Redis is
    #: shared under ACL users (docs/security-broker.md), so Redis holds no order's title.
    relay_shared_stream: bool = True
    #: How often each worker asks for the placement-deadline expiry job (R3d), in
    #: milliseconds. Every run closes each expired order once, however many workers ask.
    expiry_interval_ms: int = Field(default=15 * 60 * 1000, ge=1000)

    #: How long dead letters are kept in the store before workers purge them, in days.
    dead_letter_retention_days: int = Field(default=90, ge=1)
    #: A worker silent this long is taken for dead and its unacked messages are put back
    #: on their queues, in milliseconds. Workers beat every ``maintenance_interval_ms``.
    heartbeat_timeout_ms: int = Field(default=20_000, ge=1000)
    #: How often each worker beats and runs the broker's maintenance (requeueing the
    #: messages of dead workers), in milliseconds.
    maintenance_interval_ms: int = Field(default=5_000, ge=100)
    #: Port of a worker's Prometheus endpoint (process i of N serves port + i); unset = none.
    metrics_port: int | None = Field(default=None, ge=0, le=65535)
    #: Address the metrics endpoint listens on: loopback (this host only) unless set, e.g.
    #: to ``0.0.0.0`` or the host's own address for a Prometheus on another host (the
    #: endpoint has no authentication: open it to the monitoring network only).
    metrics_addr: str = Field(default="127.0.0.1", min_length=1, max_length=255)
    #: How long the store's figures of one scrape serve the next scrapes, in milliseconds:
    #: a scrape runs GROUP BYs over orders, placements and dead letters at most this often.
    metrics_cache_ms: int = Field(default=10_000, ge=0, le=3_600_000)

    #: Most things (orders, employers, "my placements") one caseworker may follow, a count;
    #: ``follow`` past it is refused naming the limit.
    max_follows_per_caseworker: int = Field(default=1000, ge=1, le=100_000)

    #: Language of user-facing texts (notifications).
    language: Literal["da", "en"] = "da"

    #: The notifier shows a change once no further change came for this long, in ms.
    notifier_quiet_ms: int = Field(default=300, ge=0, le=60_000)
    #: At most one desktop notification per this many milliseconds: changes arriving in
    #: between are summed up in one summary notification (a burst never means 20 popups).
    notifier_burst_ms: int = Field(default=3_000, ge=0, le=3_600_000)
    #: How often the notifier re-reads what the caseworker follows, in milliseconds.
    notifier_follows_refresh_ms: int = Field(default=30_000, ge=1_000)
    #: Longest wait between reconnection attempts when Redis is gone, in milliseconds.
    notifier_reconnect_max_ms: int = Field(default=5_000, ge=10)
    #: How long a desktop notification stays on screen, in milliseconds.
    notifier_display_ms: int = Field(default=10_000, ge=1_000)
    #: Where a notification's "Åbn" action opens an order, ``{id}`` being its id (e.g.
    #: ``https://fagsystem.example/jobordre/{id}``); unset = no action.
    order_url: str | None = None

    @field_validator("redis_url")
    @classmethod
    def _known_redis_url(cls, value: str | None) -> str | None:
        # A malformed URL is reported at start, naming the form, not at the first call.
        if not value:
            return value
        try:
            return check_redis_url(value)
        except InvalidInput as error:
            raise ValueError(error.message) from None

    @property
    def db_path(self) -> Path:
        """The SQLite file: ``JOBORDRE_DB`` or ``<home>/jobordre.db``."""
        return self.db if self.db is not None else self.home / "jobordre.db"

    @property
    def keys_path(self) -> Path:
        """The folder of signing-key files."""
        return self.key_dir if self.key_dir is not None else self.home / "keys"

    @property
    def foundation_key_path(self) -> Path:
        """The foundation's protocol 2 key file."""
        if self.foundation_key_file is not None:
            return self.foundation_key_file
        return self.home / "foundation.v2.key"

    @property
    def embedded_address_file(self) -> Path:
        """Where ``jobordre up`` writes the embedded broker's URL for other terminals."""
        return self.home / "embedded.json"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read from the environment on first use."""
    return Settings()
