"""Schema migrations of the SQLite store, numbered by ``PRAGMA user_version``.

A migration is appended, never edited: a store at version N gets migrations N+1.. applied
in order, each idempotent. The search index and its triggers are
:mod:`shared.store.sqlite_search`'s (v3; v1's plain ``orders_fts`` is dropped by it).
PostgreSQL's migrations, numbered alike: :mod:`shared.store.postgres_schema`.
"""

from __future__ import annotations

import fcntl
import sqlite3
from collections.abc import Callable
from pathlib import Path

import sqlite_utils

from shared.store import sqlite_search as search
from shared.store.interface import PUBLIC_KEYS_DDL
from shared.store.private_files import private_file


def _v1_core(db: sqlite_utils.Database) -> None:
    db.executescript(
        """
        CREATE TABLE IF NOT EXISTS orders (
            id INTEGER PRIMARY KEY,
            status TEXT NOT NULL,
            municipality TEXT NOT NULL,
            job_type TEXT NOT NULL,
            employer_cvr TEXT NOT NULL,
            placement_deadline TEXT NOT NULL,
            version INTEGER NOT NULL,
            updated_at TEXT NOT NULL,
            title TEXT NOT NULL,
            description TEXT NOT NULL,
            occupation TEXT NOT NULL,
            doc TEXT NOT NULL
        );
        CREATE INDEX IF NOT EXISTS orders_by_municipality
            ON orders (municipality, status, updated_at);
        CREATE INDEX IF NOT EXISTS orders_by_employer ON orders (employer_cvr, status);
        CREATE INDEX IF NOT EXISTS orders_by_deadline ON orders (status, placement_deadline);

        CREATE TABLE IF NOT EXISTS placements (
            id INTEGER PRIMARY KEY,
            order_id INTEGER NOT NULL REFERENCES orders (id),
            cpr TEXT,
            placed_by TEXT NOT NULL,
            caseworker TEXT,
            referral INTEGER NOT NULL,
            status TEXT NOT NULL,
            note TEXT,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL,
            UNIQUE (order_id, cpr)
        );
        CREATE INDEX IF NOT EXISTS placements_by_organisation ON placements (placed_by, order_id);

        CREATE TABLE IF NOT EXISTS placement_log (
            id INTEGER PRIMARY KEY,
            order_id INTEGER NOT NULL REFERENCES orders (id),
            placement_id INTEGER NOT NULL REFERENCES placements (id),
            at TEXT NOT NULL,
            organisation TEXT NOT NULL,
            caseworker TEXT,
            from_status TEXT,
            to_status TEXT NOT NULL,
            note TEXT
        );
        CREATE INDEX IF NOT EXISTS placement_log_by_order ON placement_log (order_id, id);

        -- The event log, append-only: one row per change of an order or its placement
        -- log, written in the change's own transaction (the transactional outbox). `seq` is
        -- every reader's cursor; `pushed` says the relay has put the header on Redis.
        CREATE TABLE IF NOT EXISTS events (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            id TEXT NOT NULL UNIQUE,
            type TEXT NOT NULL,
            at TEXT NOT NULL,
            order_id INTEGER NOT NULL,
            employer_cvr TEXT NOT NULL,
            header TEXT NOT NULL,
            order_doc TEXT NOT NULL,
            log_upto INTEGER,
            command_id TEXT,
            pushed INTEGER NOT NULL DEFAULT 0
        );
        CREATE INDEX IF NOT EXISTS events_unpushed ON events (seq) WHERE pushed = 0;
        CREATE INDEX IF NOT EXISTS events_by_employer ON events (employer_cvr, seq);
        CREATE INDEX IF NOT EXISTS events_by_order ON events (order_id, seq);

        -- Who receives each event: organisation principals, or 'authorities' for all.
        CREATE TABLE IF NOT EXISTS event_audience (
            organisation TEXT NOT NULL,
            seq INTEGER NOT NULL REFERENCES events (seq),
            PRIMARY KEY (organisation, seq)
        ) WITHOUT ROWID;

        -- Signing keys of the organisations; two may be valid at once during a rotation.
        CREATE TABLE IF NOT EXISTS signing_keys (
            key_id TEXT PRIMARY KEY,
            principal TEXT NOT NULL,
            secret TEXT NOT NULL,
            created_at TEXT NOT NULL,
            revoked_at TEXT
        );
        CREATE INDEX IF NOT EXISTS signing_keys_by_principal ON signing_keys (principal);

        -- Who read or changed which person's data (a citizen may ask): the person is
        -- named by a keyed hash of the CPR, never the CPR itself.
        CREATE TABLE IF NOT EXISTS access_log (
            id INTEGER PRIMARY KEY,
            at TEXT NOT NULL,
            person TEXT NOT NULL,
            organisation TEXT NOT NULL,
            caseworker TEXT,
            action TEXT NOT NULL,
            order_id INTEGER,
            placement_id INTEGER
        );
        CREATE INDEX IF NOT EXISTS access_log_by_person ON access_log (person, id);

        -- Secrets of the foundation itself (the key of the access log's CPR hash).
        CREATE TABLE IF NOT EXISTS foundation_secrets (
            name TEXT PRIMARY KEY,
            value TEXT NOT NULL
        );

        -- What caseworkers follow, kept in the foundation so it follows them across desks.
        CREATE TABLE IF NOT EXISTS follows (
            organisation TEXT NOT NULL,
            caseworker TEXT NOT NULL,
            target_type TEXT NOT NULL,
            target TEXT NOT NULL,
            created_at TEXT NOT NULL,
            PRIMARY KEY (organisation, caseworker, target_type, target)
        ) WITHOUT ROWID;

        -- Command ledger: the result of every write command, keyed by its command id.
        CREATE TABLE IF NOT EXISTS commands (
            command_id TEXT PRIMARY KEY,
            kind TEXT NOT NULL,
            principal TEXT NOT NULL,
            digest TEXT NOT NULL,
            outcome TEXT NOT NULL,
            reply TEXT NOT NULL,
            at TEXT NOT NULL
        );

        -- Everything that could not be processed, with its reason; nothing is dropped.
        CREATE TABLE IF NOT EXISTS dead_letters (
            id INTEGER PRIMARY KEY,
            at TEXT NOT NULL,
            source TEXT NOT NULL,
            command_id TEXT,
            kind TEXT,
            principal TEXT,
            code TEXT NOT NULL,
            reason TEXT NOT NULL,
            traceback TEXT,
            -- The message with personal data masked: what people are shown.
            message TEXT NOT NULL,
            -- The message as it arrived, for `dead retry` only; never printed.
            original TEXT
        );
        CREATE INDEX IF NOT EXISTS dead_letters_by_time ON dead_letters (at);
        """
    )
    db.table("orders").enable_fts(
        ["title", "description", "occupation"],
        create_triggers=True,
        tokenize="unicode61 remove_diacritics 2",
        replace=True,
    )


def _v2_ops(db: sqlite_utils.Database) -> None:
    # Dead letters learn whether and by whom they were retried; ALTER TABLE has no
    # IF NOT EXISTS, so the columns are checked first to keep the migration idempotent.
    columns = {column.name for column in db.table("dead_letters").columns}
    for name in ("retried_at", "retried_by"):
        if name not in columns:
            db.execute(f"ALTER TABLE dead_letters ADD COLUMN {name} TEXT")
    db.executescript(
        """
        -- Every retry and purge of dead letters, with the operator who did it.
        CREATE TABLE IF NOT EXISTS ops_audit (
            id INTEGER PRIMARY KEY,
            at TEXT NOT NULL,
            operator TEXT NOT NULL,
            action TEXT NOT NULL,
            dead_letter_id INTEGER,
            count INTEGER NOT NULL,
            detail TEXT NOT NULL
        );
        CREATE INDEX IF NOT EXISTS ops_audit_by_time ON ops_audit (at);
        """
    )


def _v3_search(db: sqlite_utils.Database) -> None:
    # The search index of shared/search.py (filters inside FTS5, bounded ranking) replaces
    # the plain orders_fts of v1: it is dropped, and the new index built from the orders.
    search.create_index(db.conn)


def _v4_search_rebuild(db: sqlite_utils.Database) -> None:
    # Stores migrated to v3 while the search design was settling hold an index of an
    # earlier shape (positive rowids, no compound tag); rebuild it to the current design.
    search.create_index(db.conn)


def _v5_ledger_per_organisation(db: sqlite_utils.Database) -> None:
    # A command is (principal, command_id): an id that organisation B sends can never claim
    # organisation A's command. The table is rebuilt in one transaction (SQLite cannot
    # change a primary key in place); rerunning it after a crash finds the new key and only
    # makes sure the reads table exists.
    key = [row[5] for row in db.execute("PRAGMA table_info(commands)").fetchall() if row[5]]
    if len(key) < 2:
        db.executescript(
            """
            BEGIN;
            CREATE TABLE commands_by_organisation (
                principal TEXT NOT NULL,
                command_id TEXT NOT NULL,
                kind TEXT NOT NULL,
                digest TEXT NOT NULL,
                outcome TEXT NOT NULL,
                reply TEXT NOT NULL,
                at TEXT NOT NULL,
                PRIMARY KEY (principal, command_id)
            );
            INSERT INTO commands_by_organisation
                SELECT principal, command_id, kind, digest, outcome, reply, at FROM commands;
            DROP TABLE commands;
            ALTER TABLE commands_by_organisation RENAME TO commands;
            COMMIT;
            """
        )
    db.executescript(
        """
        -- Read commands answered, so a captured read replayed inside the signature window
        -- gets a refusal instead of the data again; rows older than the window are purged.
        CREATE TABLE IF NOT EXISTS reads (
            principal TEXT NOT NULL,
            command_id TEXT NOT NULL,
            at TEXT NOT NULL,
            PRIMARY KEY (principal, command_id)
        ) WITHOUT ROWID;
        CREATE INDEX IF NOT EXISTS reads_by_time ON reads (at);
        """
    )


def _v6_event_log_epochs(db: sqlite_utils.Database) -> None:
    # The event log's identity (shared/events.py, Cursor): an epoch starts when the store
    # is created, and again when the relay finds the log behind what it had published (a
    # store restored from a backup). base_seq is the last seq the epoch shares with the one
    # before it; a reader's cursor from that one is resolved to at most it. ordinal orders
    # the epochs (1, 2, ...), also those that share a base seq.
    db.executescript(
        """
        CREATE TABLE IF NOT EXISTS event_log_epochs (
            epoch TEXT PRIMARY KEY,
            base_seq INTEGER NOT NULL,
            started_at TEXT NOT NULL,
            ordinal INTEGER NOT NULL UNIQUE
        );
        INSERT INTO event_log_epochs (epoch, base_seq, started_at, ordinal)
            SELECT lower(hex(randomblob(6))), 0, strftime('%Y-%m-%dT%H:%M:%S+00:00', 'now'), 1
            WHERE NOT EXISTS (SELECT 1 FROM event_log_epochs);
        """
    )


def _v7_epoch_ordinal(db: sqlite_utils.Database) -> None:
    # A store that main's first v6 migrated (before the store package) has epochs without
    # ordinal; it ordered them by base_seq, then rowid, which only SQLite has. Number them
    # in that order (again after a crash half-way: the numbering is idempotent). A store
    # made by the v6 above is numbered so already.
    if "ordinal" not in db["event_log_epochs"].columns_dict:
        db.execute("ALTER TABLE event_log_epochs ADD COLUMN ordinal INTEGER NOT NULL DEFAULT 0")
    db.executescript(
        """
        UPDATE event_log_epochs SET ordinal = (
            SELECT COUNT(*) FROM event_log_epochs AS earlier
            WHERE earlier.base_seq < event_log_epochs.base_seq
               OR (earlier.base_seq = event_log_epochs.base_seq
                   AND earlier.rowid <= event_log_epochs.rowid)
        ) WHERE (SELECT MIN(ordinal) FROM event_log_epochs) = 0;
        CREATE UNIQUE INDEX IF NOT EXISTS event_log_epochs_by_ordinal
            ON event_log_epochs (ordinal);
        """
    )


def _v8_search_prefix_indexes(db: sqlite_utils.Database) -> None:
    # The search index gains prefix indexes (sqlite_search.PREFIX_INDEX_CHARS): a common
    # word's prefix query reads one doclist instead of merging many. FTS5 cannot add them
    # to an existing table, so the index is rebuilt from the orders (minutes at a million).
    search.create_index(db.conn)


def _v9_relay_mark(db: sqlite_utils.Database) -> None:
    # The relay's high-water mark (shared/eventlog.py, unpushed) replaces the `pushed` flag
    # per event, whose partial index every event insert kept up under the write lock. The
    # mark starts below the lowest event not pushed yet (at the log's end if every event
    # was pushed): events between it and the next flush are pushed again, none is skipped.
    # Mark, index and column change in one transaction, so a crash half-way leaves the
    # flag in place and a rerun starts over; a rerun after it finds no flag and keeps the
    # mark. DROP COLUMN (SQLite >= 3.35) rewrites the table in place, keeping its
    # AUTOINCREMENT counter and the audience's foreign keys, which sqlite-utils' transform
    # (a new table copied and renamed) would have to rebuild.
    db.execute(
        "CREATE TABLE IF NOT EXISTS relay_mark ("
        " id INTEGER PRIMARY KEY CHECK (id = 1), pushed_seq INTEGER NOT NULL)"
    )
    if "pushed" in db["events"].columns_dict:
        db.executescript(
            """
            BEGIN;
            INSERT OR IGNORE INTO relay_mark (id, pushed_seq) SELECT 1, COALESCE(
                (SELECT MIN(seq) - 1 FROM events WHERE pushed = 0),
                (SELECT MAX(seq) FROM events),
                0
            );
            DROP INDEX IF EXISTS events_unpushed;
            ALTER TABLE events DROP COLUMN pushed;
            COMMIT;
            """
        )
    db.execute(
        "INSERT OR IGNORE INTO relay_mark (id, pushed_seq)"
        " SELECT 1, COALESCE((SELECT MAX(seq) FROM events), 0)"
    )


def _v10_search_tag_mark(db: sqlite_utils.Database) -> None:
    # Every tag token starts with sqlite_search.TAG_MARK, so a status change can rewrite
    # the order's status tags instead of its whole row (the text tokenized twice, every
    # word under each prefix length). And the index keeps word positions (detail=full):
    # on the detail=column index before, bm25 scored every match 0, so the search ranked
    # nothing. The tokens change, so the index is rebuilt from the orders (minutes at a
    # million), with the new triggers.
    search.create_index(db.conn)


def _v11_search_short_tags(db: sqlite_utils.Database) -> None:
    # Every tag token is two characters (shared.store.search_tags): too short for any of
    # the prefix indexes, so a tag is one index entry instead of ten, and a status change
    # writes 4 instead of 40. The tokens change, so the index is rebuilt from the orders
    # (minutes at a million), with its triggers.
    search.create_index(db.conn)


def _v12_employer_index_without_status(db: sqlite_utils.Database) -> None:
    # A status change moved the order's entry in orders_by_employer (employer_cvr, status):
    # two more index pages written under the write lock, a tenth of a status change's
    # time there (docs/performance.md). An employer's orders are few enough to filter
    # by status row by row, and ordering them by updated_at reads their rows already.
    db.executescript(
        """
        CREATE INDEX IF NOT EXISTS orders_of_employer ON orders (employer_cvr);
        DROP INDEX IF EXISTS orders_by_employer;
        """
    )


def _v13_order_ids_from_a_sequence(db: sqlite_utils.Database) -> None:
    """PostgreSQL's v13 gave orders ids from a sequence for writers side by side; SQLite
    has one writer at a time, and ``MAX(id) + 1`` as it is."""


def _v14_public_keys(db: sqlite_utils.Database) -> None:
    # Protocol 2's keys and signed commands (the same DDL on PostgreSQL), and the command
    # an access-log row came from, so the row can be proven with its signed command.
    db.executescript(PUBLIC_KEYS_DDL)
    if "command_id" not in db["access_log"].columns_dict:
        db.execute("ALTER TABLE access_log ADD COLUMN command_id TEXT")


def _v15_scoped_keys(db: sqlite_utils.Database) -> None:
    # A key may be scoped (shared/keys.py): the desktop notifier's key, bound to one
    # caseworker, may only read that caseworker's follows and the inbox's headers. Existing
    # keys get no scope: they keep doing everything they did.
    columns = db["signing_keys"].columns_dict
    for column in ("scope", "caseworker"):
        if column not in columns:
            db.execute(f"ALTER TABLE signing_keys ADD COLUMN {column} TEXT")


def _v16_postgres_search_tags(db: sqlite_utils.Database) -> None:
    """PostgreSQL's v16 put the filters inside its search index, as SQLite's v10 and v11
    did here; SQLite has nothing to change (the number keeps both engines' versions equal,
    which ``jobordre store copy`` requires)."""


def _v17_postgres_search_vector_written_out(db: sqlite_utils.Database) -> None:
    """PostgreSQL's v17 computes its search vector without calling SQL functions (the same
    vectors, less CPU a write); SQLite has nothing to change."""


def _v18_postgres_search_vector_kept_by_a_trigger(db: sqlite_utils.Database) -> None:
    """PostgreSQL's v18 keeps its search vector with a trigger, which a status change lets
    take the words from the stored vector; SQLite has nothing to change."""


#: Migrations in order; migration i brings the store to ``user_version`` i + 1.
MIGRATIONS: list[Callable[[sqlite_utils.Database], None]] = [
    _v1_core,
    _v2_ops,
    _v3_search,
    _v4_search_rebuild,
    _v5_ledger_per_organisation,
    _v6_event_log_epochs,
    _v7_epoch_ordinal,
    _v8_search_prefix_indexes,
    _v9_relay_mark,
    _v10_search_tag_mark,
    _v11_search_short_tags,
    _v12_employer_index_without_status,
    _v13_order_ids_from_a_sequence,
    _v14_public_keys,
    _v15_scoped_keys,
    _v16_postgres_search_tags,
    _v17_postgres_search_vector_written_out,
    _v18_postgres_search_vector_kept_by_a_trigger,
]

#: The schema version this code expects.
SCHEMA_VERSION = len(MIGRATIONS)


def migrate(conn: sqlite3.Connection, lock_path: Path) -> int:
    """Bring the store to :data:`SCHEMA_VERSION`; returns the version it was at.

    sqlite-utils runs DDL through ``executescript``, which commits as it goes, so a
    migration cannot be one transaction. Instead every migration is idempotent (``IF NOT
    EXISTS``, FTS rebuilt with ``replace``), ``user_version`` moves only after a migration
    completed, and a file lock keeps two starting workers from migrating at once: a crash
    half-way is repaired by the next start.
    """
    db = sqlite_utils.Database(conn)
    private_file(lock_path)
    with lock_path.open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        start = int(conn.execute("PRAGMA user_version").fetchone()[0])
        if start > SCHEMA_VERSION:
            raise RuntimeError(
                f"the store is at schema version {start}, newer than this jobordre "
                f"({SCHEMA_VERSION}): upgrade jobordre"
            )
        for version in range(start, SCHEMA_VERSION):
            MIGRATIONS[version](db)
            conn.execute(f"PRAGMA user_version = {version + 1}")
    return start
