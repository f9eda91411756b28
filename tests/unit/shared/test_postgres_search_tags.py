"""PostgreSQL's search tags (shared/store/postgres_search.py): the tsquery a search sends.

The index side, and what the queries find, is tested against a real server on both
engines in tests/shared/test_search.py; here, which query each kind of search becomes.
"""

from __future__ import annotations

import pytest

from shared.store import postgres_search
from shared.store.postgres_search import PLACE_WORD_CHARS, match_query

PLACE = {"municipality": "751", "status": "processing"}


@pytest.mark.parametrize(
    ("folded", "plain", "filters", "expected"),
    [
        pytest.param(
            ["tomr", "vvs"],
            "'tomr':* & 'vvs':*",
            PLACE,
            "'#751#/0#/tomr':* & '#751#/0#/vvs':*",
            id="place-and-status-each-word-behind-the-compound",
        ),
        pytest.param(
            ["tomr"],
            "'tomr':*",
            PLACE | {"job_type": "ordinary"},
            "( '#751#/0#/tomr':* ) & '#jordinary'",
            id="a-further-filter-as-its-tag",
        ),
        pytest.param(
            ["tomr"],
            "'tomr':*",
            {"municipality": "751"},
            "( 'tomr':* ) & '#m751'",
            id="a-municipality-alone-as-its-tag",
        ),
        pytest.param(["tomr"], "'tomr':*", {}, "'tomr':*", id="no-filter"),
        pytest.param(
            ["ab12"],
            "'ab' <-> '12':*",
            PLACE,
            "( 'ab' <-> '12':* ) & '#m751' & '#sprocessing'",
            id="a-word-the-parser-split-keeps-the-plain-query",
        ),
        pytest.param(
            ["t" * (PLACE_WORD_CHARS + 1)],
            f"'{'t' * (PLACE_WORD_CHARS + 1)}':*",
            PLACE,
            f"( '{'t' * (PLACE_WORD_CHARS + 1)}':* ) & '#m751' & '#sprocessing'",
            id="a-word-longer-than-the-compound-keeps",
        ),
        pytest.param(
            ["tomr"],
            "'tomr':*",
            {"municipality": "7'5\\1 #", "status": "new"},
            "'#7''5\\\\1#_#!#/snew#/tomr':*",
            id="odd-values-escaped",
        ),
    ],
)
def test_a_search_becomes_one_tsquery_with_its_filters_inside(
    folded: list[str], plain: str, filters: dict[str, str], expected: str
) -> None:
    assert match_query(folded, plain, filters) == expected


def test_a_value_too_long_for_a_lexeme_is_tagged_by_its_digest() -> None:
    value = "7" * (postgres_search.TAG_VALUE_BYTES + 1)
    tag = postgres_search.filter_tag("municipality", value)
    assert tag.startswith("#m#%") and len(tag) == len("#m#%") + 32
    assert postgres_search.filter_tag("municipality", value[:-1]) == "#m" + value[:-1]
