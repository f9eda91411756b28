"""Realistic Danish job orders, placements and identifiers, deterministic from a seed.

Used by ``jobordre demo``, the benchmark and tests. Everything comes from one
:class:`random.Random` seeded by the caller, so the same seed (and the same ``today``) gives
the same data on every machine. The data look like Denmark's: the 98 municipalities with
real postcodes (:data:`shared.municipalities.MUNICIPALITY_POSTCODES`), Danish job titles
and descriptions, DISCO-08 unit-group codes, employers with valid CVR numbers (modulus
11) and P-numbers, and CPR numbers with real birth dates, some of them failing modulus 11
as numbers issued since 2007 may.

Pure Python: no broker, no Redis, no desktop; the store is reached through
:mod:`shared.store`'s own insert functions, so generated rows are exactly what the
workers would have written.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from shared import store
from shared.identifiers import CPR_WEIGHTS, CVR_WEIGHTS
from shared.models import JobOrder, JobType, OrderStatus, Origin
from shared.municipalities import MUNICIPALITIES, MUNICIPALITY_POSTCODES
from shared.store import sqlite_search

__all__ = [
    "OCCUPATIONS",
    "Employer",
    "Generator",
    "Occupation",
    "load_orders",
]


@dataclass(frozen=True, slots=True)
class Occupation:
    """A DISCO-08 unit group, the Danish title used in job ads, and its sector."""

    disco: str
    title: str
    sector: str


#: Common Danish job titles with their DISCO-08 (= ISCO-08) unit-group codes.
OCCUPATIONS: tuple[Occupation, ...] = (
    Occupation("2221", "Sygeplejerske", "sundhed"),
    Occupation("5321", "Social- og sundhedsassistent", "sundhed"),
    Occupation("5322", "Social- og sundhedshjælper", "sundhed"),
    Occupation("2264", "Fysioterapeut", "sundhed"),
    Occupation("3251", "Klinikassistent", "sundhed"),
    Occupation("2635", "Socialrådgiver", "offentlig"),
    Occupation("2341", "Folkeskolelærer", "undervisning"),
    Occupation("2342", "Pædagog", "undervisning"),
    Occupation("5311", "Pædagogmedhjælper", "undervisning"),
    Occupation("7115", "Tømrer", "byggeri"),
    Occupation("7112", "Murer", "byggeri"),
    Occupation("7411", "Elektriker", "byggeri"),
    Occupation("7126", "VVS-montør", "byggeri"),
    Occupation("7131", "Maler", "byggeri"),
    Occupation("9313", "Byggearbejder", "byggeri"),
    Occupation("2142", "Bygningsingeniør", "byggeri"),
    Occupation("8343", "Kranfører", "byggeri"),
    Occupation("7231", "Automekaniker", "industri"),
    Occupation("7212", "Svejser", "industri"),
    Occupation("7214", "Smed", "industri"),
    Occupation("7223", "CNC-operatør", "industri"),
    Occupation("7222", "Værktøjsmager", "industri"),
    Occupation("8189", "Procesoperatør", "industri"),
    Occupation("3115", "Maskintekniker", "industri"),
    Occupation("2144", "Maskiningeniør", "industri"),
    Occupation("8160", "Produktionsmedarbejder", "industri"),
    Occupation("8332", "Lastbilchauffør", "transport"),
    Occupation("8331", "Buschauffør", "transport"),
    Occupation("8322", "Chauffør", "transport"),
    Occupation("8344", "Truckfører", "transport"),
    Occupation("9333", "Lagerarbejder", "transport"),
    Occupation("4321", "Lagermedarbejder", "transport"),
    Occupation("5120", "Kok", "hotel"),
    Occupation("9412", "Køkkenmedhjælper", "hotel"),
    Occupation("5131", "Tjener", "hotel"),
    Occupation("1412", "Restaurantchef", "hotel"),
    Occupation("9112", "Rengøringsassistent", "service"),
    Occupation("5153", "Pedel", "service"),
    Occupation("5414", "Sikkerhedsvagt", "service"),
    Occupation("5141", "Frisør", "service"),
    Occupation("5223", "Butiksassistent", "handel"),
    Occupation("5230", "Kassemedarbejder", "handel"),
    Occupation("1420", "Butikschef", "handel"),
    Occupation("3322", "Sælger", "handel"),
    Occupation("4222", "Kundeservicemedarbejder", "handel"),
    Occupation("4110", "Kontorassistent", "kontor"),
    Occupation("3343", "Sekretær", "kontor"),
    Occupation("4311", "Bogholder", "kontor"),
    Occupation("2411", "Revisor", "kontor"),
    Occupation("2431", "Marketingkoordinator", "kontor"),
    Occupation("2512", "Softwareudvikler", "it"),
    Occupation("2514", "Programmør", "it"),
    Occupation("3512", "IT-supporter", "it"),
    Occupation("7512", "Bager", "foedevarer"),
    Occupation("7511", "Slagter", "foedevarer"),
    Occupation("6121", "Landbrugsmedhjælper", "landbrug"),
    Occupation("6113", "Anlægsgartner", "landbrug"),
)

#: Workplaces per sector, for titles such as "Tømrer til renovering".
_WORKPLACES: dict[str, tuple[str, ...]] = {
    "sundhed": ("plejecenter", "hjemmeplejen", "sygehus", "bosted", "akutafdeling"),
    "offentlig": ("jobcenter", "familieafdeling", "borgerservice"),
    "undervisning": ("børnehave", "vuggestue", "skole", "SFO", "fritidsklub"),
    "byggeri": ("renovering", "nybyggeri", "byggeplads", "service og reparation"),
    "industri": ("produktion", "værksted", "vedligehold", "montage"),
    "transport": ("distribution", "fjernkørsel", "lager", "terminal"),
    "hotel": ("restaurant", "kantine", "hotel", "café"),
    "service": ("kontorrengøring", "skole", "butik", "ejendom"),
    "handel": ("supermarked", "byggemarked", "tøjbutik", "webshop"),
    "kontor": ("administration", "økonomiafdeling", "salgsafdeling"),
    "it": ("udviklingsteam", "driftsafdeling", "support"),
    "foedevarer": ("bageri", "slagterbutik", "fødevareproduktion"),
    "landbrug": ("kvægbrug", "svinebrug", "planteskole", "park og vej"),
}

#: Title patterns; ``{t}`` is the occupation title, ``{w}`` a workplace of its sector.
_TITLE_PATTERNS: tuple[str, ...] = (
    "{t}",
    "{t} til {w}",
    "{t} søges",
    "Erfaren {tl} til {w}",
    "{t} – fast stilling",
    "{t} til deltid",
    "{t} til vikariat",
    "Ny {tl} til {w}",
)

_OPENINGS: tuple[str, ...] = (
    "Vi søger en {tl} til vores {w}.",
    "Har du lyst til at arbejde som {tl} i et godt team?",
    "{e} søger en engageret {tl}.",
    "Vi har travlt og mangler en dygtig {tl} til {w}.",
    "Til vores {w} søger vi en stabil og mødestabil {tl}.",
)
_DUTIES: dict[str, tuple[str, ...]] = {
    "sundhed": (
        "Du skal varetage pleje og omsorg for borgerne.",
        "Opgaverne omfatter medicinhåndtering, dokumentation og samarbejde med pårørende.",
        "Du indgår i dag-, aften- og weekendvagter efter rulleplan.",
    ),
    "offentlig": (
        "Du skal sagsbehandle efter serviceloven og beskæftigelsesloven.",
        "Du samarbejder tæt med jobcentret og virksomhederne.",
    ),
    "undervisning": (
        "Du skal skabe trygge rammer for børnenes leg og læring.",
        "Du deltager i forældresamarbejde og planlægning af aktiviteter.",
    ),
    "byggeri": (
        "Opgaverne spænder fra renovering til nybyggeri af boliger og erhverv.",
        "Du arbejder selvstændigt på byggepladsen og i samarbejde med andre faggrupper.",
        "Kendskab til sikkerhed på byggepladsen er vigtigt.",
    ),
    "industri": (
        "Du skal betjene og indstille maskiner i produktionen.",
        "Opgaverne omfatter kvalitetskontrol, vedligehold og fejlfinding.",
        "Der arbejdes i to- eller treholdsskift.",
    ),
    "transport": (
        "Du skal levere varer til kunder på Sjælland, Fyn og i Jylland.",
        "Opgaverne er pluk, pak og læsning af lastbiler.",
        "Du skal have gyldigt kørekort og chaufføruddannelsesbevis.",
    ),
    "hotel": (
        "Du skal tilberede og anrette mad til gæster og personale.",
        "Du sørger for god service, hygiejne og orden i køkkenet.",
    ),
    "service": (
        "Opgaverne er daglig rengøring og vedligehold af bygninger.",
        "Du arbejder selvstændigt og tilrettelægger selv din dag.",
    ),
    "handel": (
        "Du skal betjene kunder, fylde varer op og tage dig af kassen.",
        "Du er med til at skabe en god butik med fokus på salg og service.",
    ),
    "kontor": (
        "Du skal varetage bogføring, fakturering og almindelige kontoropgaver.",
        "Du har styr på detaljerne og kender Office-pakken.",
    ),
    "it": (
        "Du skal udvikle og vedligeholde vores systemer i Python og Java.",
        "Du hjælper brugerne med support på hardware og software.",
    ),
    "foedevarer": (
        "Du skal producere brød, kager og pålæg af høj kvalitet.",
        "Der er tidlige mødetider og travlt i weekenderne.",
    ),
    "landbrug": (
        "Du skal passe dyr, markarbejde og maskiner.",
        "Opgaverne omfatter pleje af grønne områder, beskæring og anlæg.",
    ),
}
_REQUIREMENTS: tuple[str, ...] = (
    "Du har relevant uddannelse og gerne erfaring fra lignende stilling.",
    "Du taler og skriver dansk.",
    "Kørekort til almindelig bil er en fordel.",
    "Du er mødestabil, ansvarsbevidst og har godt humør.",
    "Nyuddannede er også velkomne til at søge.",
    "Du kan arbejde både selvstændigt og i team.",
    "Ren straffeattest er et krav.",
)
_OFFERS: tuple[str, ...] = (
    "Vi tilbyder løn efter overenskomst og pension.",
    "Du bliver en del af en uformel arbejdsplads med gode kolleger.",
    "Der er mulighed for efteruddannelse og faglig udvikling.",
    "Tiltrædelse snarest muligt.",
    "Der er frokostordning og fri parkering.",
)

_FIRST_NAMES: tuple[str, ...] = (
    "Mette", "Anne", "Kirsten", "Hanne", "Susanne", "Lone", "Camilla", "Louise", "Maria",
    "Sofie", "Ida", "Emma", "Peter", "Jens", "Lars", "Henrik", "Søren", "Thomas", "Niels",
    "Rasmus", "Mads", "Anders", "Jesper", "Martin", "Frederik", "Mikkel", "Jonas", "Ahmed",
    "Fatima", "Karolina",
)  # fmt: skip
_LAST_NAMES: tuple[str, ...] = (
    "Nielsen", "Jensen", "Hansen", "Pedersen", "Andersen", "Christensen", "Larsen",
    "Sørensen", "Rasmussen", "Jørgensen", "Petersen", "Madsen", "Kristensen", "Olsen",
    "Thomsen", "Christiansen", "Poulsen", "Johansen", "Møller", "Mortensen", "Holm",
    "Østergaard", "Knudsen", "Kowalski", "Yilmaz",
)  # fmt: skip
_STREETS: tuple[str, ...] = (
    "Hovedgaden", "Storegade", "Vestergade", "Østergade", "Nørregade", "Søndergade",
    "Industrivej", "Stationsvej", "Skolevej", "Kirkevej", "Møllevej", "Fabriksvej",
    "Havnegade", "Jernbanegade", "Engvej", "Bøgevej", "Egevej", "Parkvej", "Ringvejen",
    "Strandvejen", "Åboulevarden", "Rådhuspladsen", "Erhvervsvej", "Håndværkervej",
)  # fmt: skip
_COMPANY_WORDS: tuple[str, ...] = (
    "Nordisk", "Dansk", "Vest", "Øst", "Fjord", "Skov", "Bakke", "Strand", "Kyst", "Lyng",
    "Nord", "Syd", "Midt", "Hede", "Bøg",
)  # fmt: skip
_COMPANY_KINDS: dict[str, tuple[str, ...]] = {
    "sundhed": ("Pleje", "Omsorg", "Sundhed"),
    "offentlig": ("Kommune",),
    "undervisning": ("Børnehus", "Skole", "Institution"),
    "byggeri": ("Byg", "Entreprise", "Tømrer & Snedker", "El-service", "VVS"),
    "industri": ("Metal", "Maskinfabrik", "Plast", "Industri"),
    "transport": ("Transport", "Logistik", "Fragt", "Vognmandsforretning"),
    "hotel": ("Kro", "Hotel", "Køkken", "Catering"),
    "service": ("Service", "Rengøring", "Facility"),
    "handel": ("Handel", "Supermarked", "Byggecenter"),
    "kontor": ("Revision", "Administration", "Rådgivning"),
    "it": ("Software", "IT", "Data"),
    "foedevarer": ("Bageri", "Slagter", "Fødevarer"),
    "landbrug": ("Landbrug", "Gartneri", "Planteskole"),
}
_COMPANY_FORMS: tuple[str, ...] = ("ApS", "A/S", "I/S", "K/S", "")

#: Weight of each kommunekode when a municipality is drawn: roughly its share of jobs.
#: The large cities by hand (thousands of inhabitants, Danmarks Statistik 2024, rounded);
#: every other municipality counts as :data:`_DEFAULT_WEIGHT`.
_CITY_WEIGHTS: dict[str, int] = {
    "101": 660, "751": 370, "851": 220, "461": 210, "561": 116, "630": 120, "265": 90,
    "621": 95, "615": 97, "730": 100, "147": 105, "740": 100, "657": 90, "157": 75,
    "159": 70,
}  # fmt: skip
#: Weight of a municipality without an entry in :data:`_CITY_WEIGHTS` (thousands).
_DEFAULT_WEIGHT = 45

#: Stored status mix of bulk-loaded orders: mostly open, as in a live foundation.
_STATUS_WEIGHTS: dict[OrderStatus, int] = {
    OrderStatus.PROCESSING: 60,
    OrderStatus.INACTIVATED: 10,
    OrderStatus.CLOSED_FILLED: 20,
    OrderStatus.CLOSED_EXPIRED: 10,
}
#: Job type mix of generated orders; ordinary jobs dominate.
_JOB_TYPE_WEIGHTS: dict[JobType, int] = {
    JobType.ORDINARY: 70,
    JobType.WAGE_SUBSIDY: 8,
    JobType.COMPANY_PLACEMENT: 8,
    JobType.FLEX_JOB: 5,
    JobType.APPRENTICE: 4,
    JobType.JOB_ROTATION: 2,
    JobType.UTILITY_WORK: 3,
}
#: Share of generated CPR numbers that pass the old modulus-11 check.
CPR_MODULUS11_SHARE = 0.7
#: Orders per write transaction when bulk-loading: big, since one commit costs an fsync.
LOAD_BATCH = 5_000
#: How far back the bulk-loaded orders were created, in days.
HISTORY_DAYS = 730
#: Employers generated per order, at least :data:`MIN_EMPLOYERS`: a few orders each.
EMPLOYERS_PER_ORDER = 0.05
#: Smallest employer pool, so small data sets still have many employers.
MIN_EMPLOYERS = 50
#: Largest employer pool; Denmark has roughly this many employers posting jobs a year.
MAX_EMPLOYERS = 50_000

_ASCII = str.maketrans({"æ": "ae", "ø": "oe", "å": "aa", "é": "e", " ": "", "&": "", "/": ""})


@dataclass(frozen=True, slots=True)
class Employer:
    """A generated employer: valid CVR, one workplace (P-number) and its address."""

    cvr: str
    p_number: str
    name: str
    sector: str
    street: str
    postcode: str
    city: str
    municipality: str

    @property
    def domain(self) -> str:
        """An e-mail domain derived from the name (ASCII only)."""
        base = self.name.lower().translate(_ASCII)
        return "".join(ch for ch in base if ch.isascii() and ch.isalnum()) + ".dk"


def _check_digit(digits: str, weights: tuple[int, ...]) -> int | None:
    """The last digit making ``digits + d`` pass modulus 11 (last weight 1); None if 10."""
    total = sum(int(d) * w for d, w in zip(digits, weights, strict=False))
    digit = -total % 11
    return None if digit == 10 else digit


def _cpr_seventh_digits(year: int) -> tuple[int, ...]:
    """The 7th CPR digits that give ``year``'s century, per the CPR office's table."""
    if 1900 <= year <= 1999:
        # 4 and 9 mean the 1900s only from 37 on; 5-8 never do (2000s or 1800s).
        return (0, 1, 2, 3, 4, 9) if year % 100 >= 37 else (0, 1, 2, 3)
    if 2000 <= year <= 2036:
        return (4, 9, 5, 6, 7, 8)
    return (5, 6, 7, 8)  # 2037-2057, and 1858-1899


class Generator:
    """A deterministic source of realistic data; one seed, one stream.

    ``today`` anchors every date (deadlines, creation times), so that a seed gives the same
    orders whatever day it runs: pass it in tests, leave it to the real date for demos.
    """

    def __init__(self, seed: int = 0, *, today: date | None = None, employers: int = 200) -> None:
        # Not for secrets: a reproducible stream is the point.
        self.rng = random.Random(seed)  # noqa: S311
        self.today = today or datetime.now(UTC).date()
        codes = list(MUNICIPALITIES)
        self._codes = codes
        self._code_weights = [_CITY_WEIGHTS.get(code, _DEFAULT_WEIGHT) for code in codes]
        self._cum_code_weights = _cumulative(self._code_weights)
        self._statuses = list(_STATUS_WEIGHTS)
        self._cum_status = _cumulative(list(_STATUS_WEIGHTS.values()))
        self._job_types = list(_JOB_TYPE_WEIGHTS)
        self._cum_job_types = _cumulative(list(_JOB_TYPE_WEIGHTS.values()))
        self.employers: list[Employer] = [self.employer() for _ in range(max(1, employers))]

    # --- identifiers ---------------------------------------------------------------------

    def cvr(self) -> str:
        """A CVR number: 8 digits, first not 0, passing modulus 11."""
        rng = self.rng
        while True:
            head = str(rng.randint(1_000_000, 9_999_999))
            digit = _check_digit(head, CVR_WEIGHTS)
            if digit is not None:
                return f"{head}{digit}"

    def p_number(self) -> str:
        """A P-number: 10 digits (no check digit); real ones start with 1."""
        return str(self.rng.randint(1_000_000_000, 1_999_999_999))

    def cpr(self, *, modulus11: bool | None = None) -> str:
        """A CPR number with a real birth date (1940–2008) and a consistent 7th digit.

        ``modulus11`` forces passing (True) or failing (False) the old check; by default
        :data:`CPR_MODULUS11_SHARE` of the numbers pass, as most numbers still do.
        """
        rng = self.rng
        if modulus11 is None:
            modulus11 = rng.random() < CPR_MODULUS11_SHARE
        born = date(1940, 1, 1) + timedelta(days=rng.randrange(68 * 365))
        head = born.strftime("%d%m%y")
        seventh = rng.choice(_cpr_seventh_digits(born.year))
        while True:
            middle = f"{head}{seventh}{rng.randint(0, 99):02d}"
            check = _check_digit(middle, CPR_WEIGHTS)
            if modulus11:
                if check is not None:
                    return f"{middle}{check}"
            else:
                last = rng.randrange(10)
                if last != check:
                    return f"{middle}{last}"

    def municipality(self) -> str:
        """A kommunekode, weighted by the municipality's size."""
        return self._codes[_pick(self.rng, self._cum_code_weights)]

    # --- employers and orders ------------------------------------------------------------

    def employer(self) -> Employer:
        """A new employer with a valid CVR, a P-number and an address in one municipality."""
        rng = self.rng
        sector = rng.choice(OCCUPATIONS).sector
        code = self.municipality()
        town = MUNICIPALITIES[code]
        kind = rng.choice(_COMPANY_KINDS[sector])
        if kind == "Kommune":
            name = f"{town} Kommune"
        else:
            prefix = rng.choice((rng.choice(_COMPANY_WORDS), town, rng.choice(_LAST_NAMES)))
            name = f"{prefix} {kind} {rng.choice(_COMPANY_FORMS)}".strip()
        return Employer(
            cvr=self.cvr(),
            p_number=self.p_number(),
            name=name,
            sector=sector,
            street=f"{rng.choice(_STREETS)} {rng.randint(1, 180)}",
            postcode=rng.choice(MUNICIPALITY_POSTCODES[code]),
            city=town,
            municipality=code,
        )

    def order(self) -> dict[str, Any]:
        """One ORDER.json document (what :class:`shared.models.OrderDraft` accepts)."""
        rng = self.rng
        employer = rng.choice(self.employers)
        occupation = self._occupation_for(employer.sector)
        workplace = rng.choice(_WORKPLACES[occupation.sector])
        lower = occupation.title.lower() if occupation.title[1:2].islower() else occupation.title
        title = rng.choice(_TITLE_PATTERNS).format(t=occupation.title, tl=lower, w=workplace)
        first, last = rng.choice(_FIRST_NAMES), rng.choice(_LAST_NAMES)
        sentences = [
            rng.choice(_OPENINGS).format(tl=lower, w=workplace, e=employer.name),
            *rng.sample(_DUTIES[occupation.sector], k=min(2, len(_DUTIES[occupation.sector]))),
            *rng.sample(_REQUIREMENTS, k=rng.randint(1, 3)),
            *rng.sample(_OFFERS, k=rng.randint(1, 2)),
            f"Kontakt {first} {last} for at høre mere om stillingen.",
        ]
        job_type = self._job_types[_pick(rng, self._cum_job_types)]
        hours = rng.choice((37.0, 37.0, 37.0, 30.0, 25.0, 32.0, 20.0, 15.0))
        return {
            "title": title[:100],
            "description": " ".join(sentences),
            "occupation": {"disco": occupation.disco, "label": occupation.title},
            "job_type": job_type.value,
            "positions": rng.choice((1, 1, 1, 1, 2, 2, 3, 5)),
            "hours_per_week": hours,
            "employer": {"cvr": employer.cvr, "p_number": employer.p_number},
            "address": {
                "street": employer.street,
                "postcode": employer.postcode,
                "city": employer.city,
                "municipality": employer.municipality,
            },
            "contact": {
                "name": f"{first} {last}",
                "phone": f"+45 {rng.randint(20_000_000, 99_999_999)}",
                "email": f"{first.lower().translate(_ASCII)}@{employer.domain}",
            },
            "placement_deadline": (self.today + timedelta(days=rng.randint(7, 90))).isoformat(),
            "max_referrals": rng.choice((None, None, None, 5, 10, 20)),
            "internal_comment": rng.choice(
                (None, None, "Arbejdsgiver foretrækker ansøgere med kørekort.", "Ring før kl. 12.")
            ),
        }

    def orders(self, count: int) -> Iterator[dict[str, Any]]:
        """``count`` ORDER.json documents."""
        for _ in range(count):
            yield self.order()

    def job_order(self, order_id: int) -> JobOrder:
        """A stored order as the foundation would hold it: a realistic status, origin, age.

        Orders past their deadline are ``closed_expired`` or closed as filled; open ones
        have a deadline ahead, so ``processing`` orders accept placements.
        """
        rng = self.rng
        draft = self.order()
        status = self._statuses[_pick(rng, self._cum_status)]
        created = datetime.combine(self.today, datetime.min.time(), UTC) - timedelta(
            seconds=rng.randrange(HISTORY_DAYS * 86_400)
        )
        updated = created + timedelta(seconds=rng.randrange(14 * 86_400))
        if status in (OrderStatus.CLOSED_EXPIRED, OrderStatus.CLOSED_FILLED):
            draft["placement_deadline"] = (created.date() + timedelta(days=30)).isoformat()
        origin = (
            Origin.JOBAG
            if draft["job_type"] == JobType.ORDINARY.value and rng.random() < 0.5
            else rng.choice((Origin.JOBCENTRE, Origin.AKASSE))
        )
        if origin is Origin.JOBAG:
            registered_by = f"employer:{draft['employer']['cvr']}"
        elif origin is Origin.JOBCENTRE:
            registered_by = f"jobcentre:{draft['address']['municipality']}"
        else:
            registered_by = f"akasse:{rng.choice(('3f', 'foa', 'hk', 'krifa', 'ase', 'dana'))}"
        return JobOrder.model_validate(
            {
                **draft,
                "id": order_id,
                "origin": origin,
                "registered_by": registered_by,
                "processing_by": [] if origin is Origin.JOBAG else [registered_by],
                "status": status,
                "version": 1 if status is OrderStatus.PROCESSING else 2,
                "created_at": created,
                "updated_at": updated,
            }
        )

    def placement(self, order_id: int, *, referral: bool | None = None) -> dict[str, Any]:
        """A ``register_placement`` payload for ``order_id`` with a fresh CPR number."""
        return {
            "order_id": order_id,
            "cpr": self.cpr(),
            "referral": self.rng.random() < 0.3 if referral is None else referral,
        }

    def search_text(self) -> str:
        """Free text a caseworker would search for: an occupation, sometimes with a word."""
        rng = self.rng
        occupation = rng.choice(OCCUPATIONS)
        word = occupation.title.split()[0].split("-")[0].lower()
        if rng.random() < 0.3:
            word = word[: max(3, len(word) - rng.randint(1, 3))]  # an unfinished word
        if rng.random() < 0.3:
            word += " " + rng.choice(_WORKPLACES[occupation.sector]).split()[0].lower()
        return word

    def _occupation_for(self, sector: str) -> Occupation:
        # Employers mostly hire within their sector, sometimes anything (office, cleaning).
        if self.rng.random() < 0.8:
            return self.rng.choice(_BY_SECTOR[sector])
        return self.rng.choice(OCCUPATIONS)


_BY_SECTOR: dict[str, tuple[Occupation, ...]] = {
    sector: tuple(o for o in OCCUPATIONS if o.sector == sector)
    for sector in {o.sector for o in OCCUPATIONS}
}


def _cumulative(weights: list[int]) -> list[int]:
    total, out = 0, []
    for weight in weights:
        total += weight
        out.append(total)
    return out


def _pick(rng: random.Random, cumulative: list[int]) -> int:
    """Index drawn by weight; bisect on the cumulative weights (faster than ``choices``)."""
    target = rng.random() * cumulative[-1]
    low, high = 0, len(cumulative) - 1
    while low < high:
        middle = (low + high) // 2
        if cumulative[middle] > target:
            high = middle
        else:
            low = middle + 1
    return low


def employers_for(count: int) -> int:
    """How many employers a data set of ``count`` orders gets."""
    return max(MIN_EMPLOYERS, min(MAX_EMPLOYERS, int(count * EMPLOYERS_PER_ORDER)))


def load_orders(
    path: Path,
    count: int,
    *,
    seed: int = 0,
    today: date | None = None,
    progress: bool = True,
    on_batch: Callable[[int], None] | None = None,
) -> tuple[int, int]:
    """Bulk-load ``count`` generated orders into the store file at ``path``.

    Rows go in through :func:`shared.store.insert_order`, so the ``orders`` row and its
    search index are exactly what registering the order through the workers writes, in
    transactions of :data:`LOAD_BATCH` orders. No events and no ledger rows are written: the
    loaded orders are history being imported, not news (a running relay would otherwise
    push every one of them to every desk). Returns the first and last order id loaded.
    """
    from rich.console import Console
    from rich.progress import Progress

    generator = Generator(seed, today=today, employers=employers_for(count))
    target = store.SqliteStore(path)
    try:
        with target.write() as conn:
            first = store.next_order_id(conn)
        next_id = first
        with Progress(console=Console(stderr=True), disable=not progress) as bar:
            task = bar.add_task(f"orders → {path.name}", total=count)
            while next_id < first + count:
                size = min(LOAD_BATCH, first + count - next_id)
                with target.write() as conn:
                    for order_id in range(next_id, next_id + size):
                        store.insert_order(conn, generator.job_order(order_id))
                next_id += size
                bar.advance(task, size)
                if on_batch is not None:
                    on_batch(next_id - first)
        if count >= first - 1:
            # The load is at least half the index now: merge it into one segment, so the
            # next writers do not pay for merging what the load left (sqlite_search).
            # A small load into a large live store skips it: it would rewrite the whole
            # index under the write lock for a few new orders.
            with target.write() as conn:
                conn.execute(sqlite_search.OPTIMIZE_SQL)
    finally:
        target.close()
    return first, first + count - 1
