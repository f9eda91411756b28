"""Valid documents to start from; each test changes only what it is about."""

from __future__ import annotations

import copy
from datetime import date, timedelta
from typing import Any

#: Employers with valid CVR numbers (modulus 11).
EMPLOYER_A = "25313763"
EMPLOYER_B = "29403473"
#: A CVR number that fails the modulus-11 check.
BAD_CVR = "12345678"
#: CPR numbers with valid dates; the second does not pass modulus 11 (allowed since 2007).
CPR_1 = "0101901234"
CPR_2 = "1512880019"
CPR_3 = "2902960001"

_ORDER: dict[str, Any] = {
    "title": "Social- og sundhedsassistent til plejecenter",
    "description": "Vi søger en erfaren SOSU-assistent til dag- og aftenvagter.",
    "occupation": {"disco": "532110", "label": "Social- og sundhedsassistent"},
    "job_type": "ordinary",
    "positions": 2,
    "hours_per_week": 37,
    "employer": {"cvr": EMPLOYER_A, "p_number": "1003388419"},
    "address": {
        "street": "Rådhuspladsen 1",
        "postcode": "1550",
        "city": "København V",
        "municipality": "101",
    },
    "contact": {"name": "Mette Hansen", "phone": "+45 33 66 33 66", "email": "mette@example.dk"},
    "placement_deadline": (date.today() + timedelta(days=30)).isoformat(),
    "max_referrals": None,
    "internal_comment": "Arbejdsgiver foretrækker ansøgere med kørekort.",
}


def order_doc(**changes: Any) -> dict[str, Any]:
    """A valid ORDER.json; keyword arguments replace top-level fields."""
    document = copy.deepcopy(_ORDER)
    document.update(changes)
    return document
