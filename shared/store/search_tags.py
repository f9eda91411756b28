"""The filter tags of SQLite's search index: one token per filter value, two characters long.

A search's filters are tokens in the index's ``tags`` column (:mod:`.sqlite_search`):
municipality, status, job type, employer CVR, and the compound of municipality and status.
Each token is :data:`TAG_MARK` followed by the value coded as ONE private-use character
(a CVR: two), e.g. status ``processing`` is ``U+E000 U+E100``.

Why so short: the index keeps prefix indexes for the lengths caseworkers type (3 to 11
characters, :data:`.sqlite_search.PREFIX_INDEX_CHARS`), and FTS5 writes every token under
each of those lengths it is long enough for. A tag spelled out (``\\ue000sprocessing``,
up to 15 characters) cost ten index entries, nine of them prefixes no query ever reads; a
token of two characters costs one. A status change rewrites two tags (the status and the
compound), so it writes 4 entries instead of 40; a new order's 5 tags are 6 entries (the
CVR, three characters, has one prefix) instead of 42 (migration 11, README "Performance").

Values the codes do not know (none reach the store through jobordre's validation, but a
store is not trusted to be only jobordre's) fall back to the spelled-out form: a letter
naming the filter and the value, so every value has exactly one token, the same in the
triggers' SQL and in :func:`tag_tokens`' Python, and no coded token equals a spelled one
(those are longer, and their second character is a letter).
"""

from __future__ import annotations

#: First character of every tag token: a private-use character, which unicode61 keeps
#: inside tokens and no text folds into. Orders' text never holds it (an order whose text
#: does is reindexed whole), so a tag shares neither a token nor a prefix with a word, and
#: a status change can rewrite the status tags alone.
TAG_MARK = "\ue000"

#: Code of each order status. Stored in the index: append new statuses, never renumber.
STATUS_CODES: dict[str, int] = {
    "processing": 0,
    "inactivated": 1,
    "closed_filled": 2,
    "closed_expired": 3,
}
#: Code of each job type. Stored in the index: append new types, never renumber.
JOB_TYPE_CODES: dict[str, int] = {
    "ordinary": 0,
    "wage_subsidy": 1,
    "company_placement": 2,
    "flex_job": 3,
    "apprentice": 4,
    "job_rotation": 5,
    "utility_work": 6,
}

#: Code point of status code 0 (private use, Basic Multilingual Plane).
STATUS_BASE = 0xE100
#: Code point of job type code 0.
JOB_TYPE_BASE = 0xE200
#: Code point of kommunekode 000; 999 is U+E7E7.
MUNICIPALITY_BASE = 0xE400
#: Code point of the compound of kommunekode 000 and status code 0: plane 15's private
#: use area, kommunekode × :data:`STATUSES_PER_MUNICIPALITY` + status code.
PLACE_STATUS_BASE = 0xF0000
#: Room for status codes per kommunekode in the compound (4 are used).
STATUSES_PER_MUNICIPALITY = 16
#: Code point of a CVR's digit group 0000: a CVR is two characters, its first four digits
#: and its last four, each from here (plane 15 still, above the compounds' U+F0000-U+F3E7F).
CVR_BASE = 0xF4000

#: Letter of each filter's spelled-out form, for a value the codes do not know.
SPELLED = {"municipality": "m", "status": "s", "job_type": "j", "employer_cvr": "e"}
#: Letter of the compound's spelled-out form.
SPELLED_PLACE_STATUS = "x"


def _spelled(letter: str, value: str) -> str:
    # Underscores dropped as the SQL drops them (unicode61 splits tokens there); anything
    # but letters and digits dropped, so a stray character never becomes FTS5 syntax.
    return letter + "".join(ch for ch in value if ch.isalnum())


def _municipality_number(value: str) -> int | None:
    return int(value) if len(value) == 3 and value.isascii() and value.isdigit() else None


def tag_token(name: str, value: str) -> str:
    """The token of one filter value (``name`` is a key of :data:`SPELLED`)."""
    code: str | None = None
    if name == "status" and value in STATUS_CODES:
        code = chr(STATUS_BASE + STATUS_CODES[value])
    elif name == "job_type" and value in JOB_TYPE_CODES:
        code = chr(JOB_TYPE_BASE + JOB_TYPE_CODES[value])
    elif name == "municipality" and (number := _municipality_number(value)) is not None:
        code = chr(MUNICIPALITY_BASE + number)
    elif name == "employer_cvr" and len(value) == 8 and value.isascii() and value.isdigit():
        high, low = divmod(int(value), 10_000)
        code = chr(CVR_BASE + high) + chr(CVR_BASE + low)
    return TAG_MARK + (code if code is not None else _spelled(SPELLED[name], value))


def place_status_token(municipality: str, status: str) -> str:
    """The compound token of a municipality and a status (the commonest search's filter)."""
    number = _municipality_number(municipality)
    if number is None or status not in STATUS_CODES:
        return TAG_MARK + _spelled(SPELLED_PLACE_STATUS, municipality + status)
    return TAG_MARK + chr(
        PLACE_STATUS_BASE + number * STATUSES_PER_MUNICIPALITY + STATUS_CODES[status]
    )


def tag_tokens(filters: dict[str, str]) -> list[str]:
    """The tokens a search with ``filters`` requires: municipality and status together are
    the compound alone (one short doclist instead of two, one of them huge)."""
    values = dict(filters)
    tokens = []
    if "municipality" in values and "status" in values:
        tokens.append(place_status_token(values.pop("municipality"), values.pop("status")))
    tokens += [tag_token(name, value) for name, value in values.items()]
    return tokens


# --- the same, as SQL over a row of ``orders`` (``new`` or ``old`` in a trigger) -------------


def _case_sql(column: str, codes: dict[str, int], base: int, letter: str) -> str:
    whens = " ".join(f"WHEN '{value}' THEN char({base + code})" for value, code in codes.items())
    return f"CASE {column} {whens} ELSE '{letter}' || replace({column}, '_', '') END"


def _digits_sql(column: str, count: int) -> str:
    return f"{column} GLOB '{'[0-9]' * count}'"


def _municipality_sql(column: str) -> str:
    return (
        f"CASE WHEN {_digits_sql(column, 3)} THEN char({MUNICIPALITY_BASE} + CAST({column} AS "
        f"INTEGER)) ELSE '{SPELLED['municipality']}' || {column} END"
    )


def _cvr_sql(column: str) -> str:
    number = f"CAST({column} AS INTEGER)"
    return (
        f"CASE WHEN {_digits_sql(column, 8)} THEN char({CVR_BASE} + {number} / 10000, "
        f"{CVR_BASE} + {number} % 10000) ELSE '{SPELLED['employer_cvr']}' || {column} END"
    )


def status_tags_sql(row: str) -> str:
    """SQL of the tags that name a row's status: the status, and the compound."""
    status = _case_sql(f"{row}.status", STATUS_CODES, STATUS_BASE, SPELLED["status"])
    known = ", ".join(f"'{value}'" for value in STATUS_CODES)
    status_code = f"CASE {row}.status " + " ".join(
        f"WHEN '{value}' THEN {code}" for value, code in STATUS_CODES.items()
    )
    compound = (
        f"CASE WHEN {_digits_sql(f'{row}.municipality', 3)} AND {row}.status IN ({known}) THEN "
        f"char({PLACE_STATUS_BASE} + CAST({row}.municipality AS INTEGER) * "
        f"{STATUSES_PER_MUNICIPALITY} + {status_code} END) "
        f"ELSE '{SPELLED_PLACE_STATUS}' || {row}.municipality || replace({row}.status, '_', '') "
        "END"
    )
    return f"'{TAG_MARK}' || {status} || ' {TAG_MARK}' || {compound}"


def tags_sql(row: str) -> str:
    """SQL building the whole ``tags`` text of a row."""
    municipality = _municipality_sql(f"{row}.municipality")
    job_type = _case_sql(f"{row}.job_type", JOB_TYPE_CODES, JOB_TYPE_BASE, SPELLED["job_type"])
    cvr = _cvr_sql(f"{row}.employer_cvr")
    single = " || ' ' || ".join(f"'{TAG_MARK}' || ({sql})" for sql in (municipality, job_type, cvr))
    return f"{single} || ' ' || {status_tags_sql(row)}"
