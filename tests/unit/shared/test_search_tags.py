"""The search index's filter tags (shared/store/search_tags.py): one token per value, two
characters, the same from the triggers' SQL as from the query's Python."""

from __future__ import annotations

import sqlite3

import pytest

from shared.models import JobType, OrderStatus
from shared.municipalities import MUNICIPALITIES
from shared.store import search_tags
from shared.store.sqlite_search import PREFIX_INDEX_CHARS, TOKENIZER

#: Rows of ``orders``' filter columns: (status, municipality, job type, employer CVR).
ROWS = [
    pytest.param(("processing", "751", "ordinary", "25313763"), id="common"),
    pytest.param(("closed_filled", "101", "flex_job", "10000000"), id="underscored-status"),
    pytest.param(("closed_expired", "860", "utility_work", "99999999"), id="largest-codes"),
    pytest.param(("inactivated", "165", "apprentice", "00000001"), id="cvr-leading-zeros"),
    pytest.param(("reopened", "7a1", "gig", "123"), id="unknown-values-spelled-out"),
]


def _sql_tags(status: str, municipality: str, job_type: str, cvr: str) -> list[str]:
    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE TABLE orders (status, municipality, job_type, employer_cvr)")
    conn.execute("INSERT INTO orders VALUES (?, ?, ?, ?)", (status, municipality, job_type, cvr))
    (text,) = conn.execute(f"SELECT {search_tags.tags_sql('orders')} FROM orders").fetchone()
    conn.close()
    return str(text).split(" ")


def _python_tags(status: str, municipality: str, job_type: str, cvr: str) -> list[str]:
    return [
        search_tags.tag_token("municipality", municipality),
        search_tags.tag_token("job_type", job_type),
        search_tags.tag_token("employer_cvr", cvr),
        search_tags.tag_token("status", status),
        search_tags.place_status_token(municipality, status),
    ]


@pytest.mark.parametrize("row", ROWS)
def test_the_triggers_sql_and_the_querys_python_make_the_same_tokens(
    row: tuple[str, str, str, str],
) -> None:
    assert _sql_tags(*row) == _python_tags(*row)


@pytest.mark.parametrize("row", ROWS)
def test_fts5_keeps_each_tag_one_token_as_it_is(row: tuple[str, str, str, str]) -> None:
    conn = sqlite3.connect(":memory:")
    conn.execute(f"CREATE VIRTUAL TABLE t USING fts5 (tags, tokenize = '{TOKENIZER}')")
    conn.execute("CREATE VIRTUAL TABLE terms USING fts5vocab (t, 'row')")
    conn.execute("INSERT INTO t (tags) VALUES (?)", (" ".join(_python_tags(*row)),))
    indexed = {term for (term,) in conn.execute("SELECT term FROM terms")}
    conn.close()
    assert indexed == set(_python_tags(*row))


def test_every_status_and_job_type_has_a_code() -> None:
    assert set(search_tags.STATUS_CODES) == {status.value for status in OrderStatus}
    assert set(search_tags.JOB_TYPE_CODES) == {job_type.value for job_type in JobType}


def test_known_values_are_too_short_for_any_prefix_index() -> None:
    tokens = [search_tags.tag_token("status", status.value) for status in OrderStatus]
    tokens += [search_tags.tag_token("job_type", job_type.value) for job_type in JobType]
    tokens += [search_tags.tag_token("municipality", code) for code in MUNICIPALITIES]
    tokens += [
        search_tags.place_status_token(code, status.value)
        for code in MUNICIPALITIES
        for status in OrderStatus
    ]
    assert {len(token) for token in tokens} == {2}
    # A CVR is three characters: one prefix entry (length 3), not eight.
    assert len(search_tags.tag_token("employer_cvr", "25313763")) == min(PREFIX_INDEX_CHARS)


def test_no_two_values_share_a_token() -> None:
    values = [("status", status.value) for status in OrderStatus]
    values += [("job_type", job_type.value) for job_type in JobType]
    values += [("municipality", code) for code in MUNICIPALITIES]
    values += [("employer_cvr", cvr) for cvr in ("00000000", "00010000", "10000000", "99999999")]
    tokens = [search_tags.tag_token(name, value) for name, value in values]
    tokens += [
        search_tags.place_status_token(code, status.value)
        for code in MUNICIPALITIES
        for status in OrderStatus
    ]
    assert len(set(tokens)) == len(tokens)


def test_municipality_and_status_together_are_the_compound_alone() -> None:
    filters = {"municipality": "751", "status": "processing", "job_type": "ordinary"}
    assert search_tags.tag_tokens(filters) == [
        search_tags.place_status_token("751", "processing"),
        search_tags.tag_token("job_type", "ordinary"),
    ]
