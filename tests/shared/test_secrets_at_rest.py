"""A copy of the store alone cannot sign as any organisation (issue 26, HIGH 2).

The version-1 signing secrets are wrapped under a key file outside the store, on both
engines; the foundation still verifies with them, and a store opened without its key file
says what to do instead of refusing every command as forged.
"""

from __future__ import annotations

import shutil
import stat
from pathlib import Path

import pytest

from shared import keys
from shared.clock import utc_now
from shared.errors import Unavailable
from shared.store import open_url
from shared.store.secrets_at_rest import PREFIX


def stored_secrets(url: str, key_file: Path) -> list[str]:
    store = open_url(url, secrets_key_file=key_file, migrate=False)
    try:
        with store.read() as conn:
            return [row[0] for row in conn.execute("SELECT secret FROM signing_keys").fetchall()]
    finally:
        store.close()


def test_the_store_keeps_no_secret_that_can_sign_and_the_worker_still_verifies(
    store_url: str, tmp_path: Path
) -> None:
    key_file = tmp_path / "secrets" / "store.key"
    store = open_url(store_url, secrets_key_file=key_file)
    with store.write() as conn:
        made = keys.create(conn, "jobcentre:751", utc_now())
    with store.read() as conn:
        assert keys.valid_keys(conn, "jobcentre:751")[made.key_id].secret == made.secret
    store.close()
    [kept] = stored_secrets(store_url, key_file)
    assert kept.startswith(PREFIX) and made.secret not in kept
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert made.secret not in key_file.read_text()


def test_a_store_without_its_key_file_says_which_setting_to_fix(
    store_url: str, tmp_path: Path
) -> None:
    store = open_url(store_url, secrets_key_file=tmp_path / "store.key")
    with store.write() as conn:
        keys.create(conn, "jobcentre:751", utc_now())
    store.close()
    copy = open_url(store_url, secrets_key_file=tmp_path / "elsewhere" / "other.key")
    with copy.read() as conn, pytest.raises(Unavailable) as refused:
        keys.valid_keys(conn, "jobcentre:751")
    copy.close()
    assert "JOBORDRE_STORE_SECRETS_KEY_FILE" in refused.value.message


def test_a_copied_sqlite_file_alone_opens_no_secret(tmp_path: Path) -> None:
    original = tmp_path / "home" / "jobordre.db"
    store = open_url(original)
    with store.write() as conn:
        made = keys.create(conn, "jobcentre:751", utc_now())
    store.close()
    stolen = tmp_path / "stolen" / "jobordre.db"
    stolen.parent.mkdir()
    shutil.copy(original, stolen)
    assert made.secret.encode() not in stolen.read_bytes()
    copy = open_url(stolen)
    with copy.read() as conn, pytest.raises(Unavailable):
        keys.valid_keys(conn, "jobcentre:751")
    copy.close()


def test_secrets_written_before_wrapping_are_wrapped_at_the_next_start(
    store_url: str, tmp_path: Path
) -> None:
    key_file = tmp_path / "store.key"
    store = open_url(store_url, secrets_key_file=key_file)
    with store.write() as conn:
        made = keys.create(conn, "akasse:3f", utc_now())
        # As an older jobordre left it: the secret in clear.
        conn.execute("UPDATE signing_keys SET secret = ?", (made.secret,))
    store.close()
    reopened = open_url(store_url, secrets_key_file=key_file)
    with reopened.read() as conn:
        assert keys.valid_keys(conn, "akasse:3f")[made.key_id].secret == made.secret
    reopened.close()
    [kept] = stored_secrets(store_url, key_file)
    assert kept.startswith(PREFIX) and made.secret not in kept


def test_a_wrapped_secret_moved_to_another_key_does_not_open(
    store_url: str, tmp_path: Path
) -> None:
    key_file = tmp_path / "store.key"
    store = open_url(store_url, secrets_key_file=key_file)
    with store.write() as conn:
        victim = keys.create(conn, "jobcentre:101", utc_now())
        thief = keys.create(conn, "jobcentre:751", utc_now())
        # Someone who may write the store copies the victim's wrapped secret onto a key
        # of their own: it must not open as the thief's.
        conn.execute(
            "UPDATE signing_keys SET secret = (SELECT secret FROM signing_keys WHERE key_id = ?)"
            " WHERE key_id = ?",
            (victim.key_id, thief.key_id),
        )
    with store.read() as conn, pytest.raises(Unavailable):
        keys.valid_keys(conn, "jobcentre:751")
    store.close()
