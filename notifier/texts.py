"""The words on the screen, in Danish (the default) and English.

Everything here is built from an :class:`~shared.events.EventHeader`, which carries no
personal data: order id, title, status and which organisations placed or changed whom.
Order titles are typed by people, so any CPR-shaped number in one is masked all the same.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from notifier.digest import Digest, OrderChanges
from shared.events import EventHeader
from shared.models import OrderStatus
from shared.municipalities import MUNICIPALITIES
from shared.redaction import redact_cpr

Language = Literal["da", "en"]

#: At most this many orders are listed in a summary; the rest are counted.
SUMMARY_ORDERS = 5


@dataclass(frozen=True)
class Notification:
    """One notification: what :meth:`notifier.backend.Desktop.show` gets."""

    title: str
    body: str


#: Words for each status. ``inactivated`` names the reason (R3b) only where the system
#: inactivated the order because its referrals reached the employer's maximum; a person
#: inactivating it said no such thing (see :func:`status_words`).
STATUS: dict[Language, dict[OrderStatus, str]] = {
    "da": {
        OrderStatus.PROCESSING: "Under behandling",
        OrderStatus.INACTIVATED: "Inaktiveret – tilstrækkelige henvisninger",
        OrderStatus.CLOSED_FILLED: "Afsluttet – behovet er dækket",
        OrderStatus.CLOSED_EXPIRED: "Afsluttet – fristen for formidling er udløbet",
    },
    "en": {
        OrderStatus.PROCESSING: "Processing",
        OrderStatus.INACTIVATED: "Inactivated – enough referrals",
        OrderStatus.CLOSED_FILLED: "Closed – the need is met",
        OrderStatus.CLOSED_EXPIRED: "Closed – the placement deadline has passed",
    },
}
#: ``inactivated`` as said of an order a person inactivated.
INACTIVATED_BY_HAND: dict[Language, str] = {"da": "Inaktiveret", "en": "Inactivated"}

_WORDS: dict[Language, dict[str, str]] = {
    "da": {
        "order": "Jobordre",
        "new_status": "Ny status",
        "registered": "Ny jobordre registreret",
        "log_updated": "Formidlingslog opdateret",
        "new_1": "ny formidling",
        "new_n": "nye formidlinger",
        "changed_1": "ændret formidling",
        "changed_n": "ændrede formidlinger",
        "from": "fra",
        "changes_1": "ændring",
        "changes_n": "ændringer",
        "on": "på",
        "orders_1": "jobordre",
        "orders_n": "jobordrer",
        "away": "Mens du var væk",
        "while_paused": "Mens der var pause",
        "more_1": "og 1 anden jobordre",
        "more_n": "og {n} andre jobordrer",
        "employer": "Arbejdsgiver (CVR {cvr})",
        "system": "Fællesdatagrundlaget",
    },
    "en": {
        "order": "Job order",
        "new_status": "New status",
        "registered": "New job order registered",
        "log_updated": "Placement log updated",
        "new_1": "new placement",
        "new_n": "new placements",
        "changed_1": "changed placement",
        "changed_n": "changed placements",
        "from": "from",
        "changes_1": "change",
        "changes_n": "changes",
        "on": "on",
        "orders_1": "job order",
        "orders_n": "job orders",
        "away": "While you were away",
        "while_paused": "While paused",
        "more_1": "and 1 more job order",
        "more_n": "and {n} more job orders",
        "employer": "Employer (CVR {cvr})",
        "system": "The data foundation",
    },
}


def organisation_name(principal: str, language: Language = "da") -> str:
    """A readable organisation: ``jobcentre:751`` → "Jobcenter Aarhus", ``akasse:3f`` →
    "A-kasse 3f"; an unknown form is shown as it is (it names an organisation, not a person).
    """
    words = _WORDS[language]
    kind, _, ident = principal.partition(":")
    if kind == "jobcentre":
        return f"Jobcenter {MUNICIPALITIES.get(ident, ident)}"
    if kind == "akasse":
        return f"A-kasse {ident}"
    if kind == "employer":
        return words["employer"].format(cvr=ident)
    if principal == "system":
        return words["system"]
    return principal


def _count(n: int, one: str, many: str) -> str:
    return f"{n} {one if n == 1 else many}"


def order_heading(event: EventHeader, language: Language = "da") -> str:
    """``Jobordre 42: Lagermedarbejder``."""
    return f"{_WORDS[language]['order']} {event.order_id}: {redact_cpr(event.title)}"


def placement_summary(events: Iterable[EventHeader], language: Language = "da") -> str | None:
    """``1 ny formidling fra Jobcenter Aarhus``, over every placement change in ``events``;
    ``None`` when they hold none. Organisations keep the order they first appear in."""
    order: OrderChanges | None = None
    for event in events:
        if order is None:
            order = OrderChanges(event)
        order.add(event)
    return None if order is None else _placements(order, language)


def _placements(order: OrderChanges, language: Language) -> str | None:
    words = _WORDS[language]
    parts = [
        f"{_count(n, words['new_1'], words['new_n'])} {words['from']} "
        f"{organisation_name(by, language)}"
        for by, n in order.new.items()
    ] + [
        f"{_count(n, words['changed_1'], words['changed_n'])} {words['from']} "
        f"{organisation_name(by, language)}"
        for by, n in order.changed.items()
    ]
    return ", ".join(parts) if parts else None


def status_words(event: EventHeader, language: Language = "da") -> str:
    """The new status of ``event`` in words; the reason of an inactivation only when the
    system inactivated the order on reaching its maximum of referrals (R3b)."""
    if event.status == OrderStatus.INACTIVATED and event.by != "system":
        return INACTIVATED_BY_HAND[language]
    return STATUS[language][event.status]


def _order_lines(order: OrderChanges, language: Language) -> list[str]:
    """What happened to one order: registered, its latest status, its placement log."""
    words = _WORDS[language]
    lines: list[str] = []
    if order.registered:
        lines.append(words["registered"])
    if order.status is not None:
        lines.append(f"{words['new_status']}: {status_words(order.status, language)}")
    log = _placements(order, language)
    if log is not None:
        lines.append(f"{words['log_updated']}: {log}")
    return lines


def summary(
    digest: Digest, language: Language = "da", *, catch_up: bool = False, paused: bool = False
) -> Notification:
    """One notification for many changes: one line per order (the first few), the rest
    counted; for ONE order outside a catch-up, its heading as title and its changes as
    body. ``catch_up`` marks changes that happened while the notifier was off, ``paused``
    those held back while the caseworker had paused it."""
    words = _WORDS[language]
    recent = digest.most_recent()
    if digest.order_count == 1 and not (catch_up or paused):
        return Notification(
            order_heading(recent[0].latest, language), "\n".join(_order_lines(recent[0], language))
        )
    title = (
        f"{_count(digest.changes, words['changes_1'], words['changes_n'])} {words['on']} "
        f"{_count(digest.order_count, words['orders_1'], words['orders_n'])}"
    )
    if paused:
        title = f"{words['while_paused']}: {title}"
    elif catch_up:
        title = f"{words['away']}: {title}"
    # The most recently changed orders first: that is what a person looks for.
    lines = [
        f"{order_heading(order.latest, language)} – {'; '.join(_order_lines(order, language))}"
        for order in recent[:SUMMARY_ORDERS]
    ]
    more = digest.order_count - SUMMARY_ORDERS
    if more > 0:
        lines.append(words["more_1"] if more == 1 else words["more_n"].format(n=more))
    return Notification(title, "\n".join(lines))


def notification_for(
    changes: Sequence[EventHeader] | Digest,
    language: Language = "da",
    *,
    catch_up: bool = False,
    paused: bool = False,
) -> Notification:
    """The one notification for a batch of changes (never empty)."""
    digest = changes if isinstance(changes, Digest) else Digest(changes)
    if not digest:
        raise ValueError("a notification needs at least one change")
    return summary(digest, language, catch_up=catch_up, paused=paused)


#: The desktop program's own words: the tray icon's tooltip and menu, ``jobordre notifier
#: install``/``uninstall``/``status``. Tooltips are window names on X, so they keep to
#: Latin-1 (no dashes beyond ``-``).
DESKTOP: dict[Language, dict[str, str]] = {
    "da": {
        "connected": "forbundet",
        "reconnecting": "forbinder igen",
        "paused": "på pause",
        "tooltip": "Jobordre: {state}",
        "order_entry": "Jobordre {id}",
        "open": "Åbn",
        "unfollow": "Følg ikke længere",
        "back": "Tilbage",
        "no_follows": "Følger ingen enkelte jobordrer",
        "pause": "Pause i 1 time",
        "resume": "Genoptag",
        "recent": "Vis seneste",
        "quit": "Afslut",
        "nothing_recent": "Ingen notifikationer endnu",
        "nothing_recent_body": "Ændringer på de jobordrer du følger vises her.",
        "already_running": "kører allerede for denne sagsbehandler (pid {pid})",
        "installed": "installeret: starter ved login ({autostart}); nøglen ligger i {key}",
        "start_now": "start den nu uden at logge ud: {command}",
        "uninstalled": "afinstalleret: {count} filer fjernet",
        "not_installed": "ikke installeret",
        "running_since": "kører siden {since} (pid {pid}), {state}",
        "not_running": "kører ikke",
        "last_shown": "seneste viste ændring {at}: {title}",
        "nothing_shown": "ingen ændring vist endnu",
    },
    "en": {
        "connected": "connected",
        "reconnecting": "reconnecting",
        "paused": "paused",
        "tooltip": "Jobordre: {state}",
        "order_entry": "Job order {id}",
        "open": "Open",
        "unfollow": "Unfollow",
        "back": "Back",
        "no_follows": "Following no single job order",
        "pause": "Pause for 1 hour",
        "resume": "Resume",
        "recent": "Show recent",
        "quit": "Quit",
        "nothing_recent": "No notifications yet",
        "nothing_recent_body": "Changes to the job orders you follow are shown here.",
        "already_running": "already running for this caseworker (pid {pid})",
        "installed": "installed: starts at login ({autostart}); the key is in {key}",
        "start_now": "start it now without logging out: {command}",
        "uninstalled": "uninstalled: {count} files removed",
        "not_installed": "not installed",
        "running_since": "running since {since} (pid {pid}), {state}",
        "not_running": "not running",
        "last_shown": "last change shown {at}: {title}",
        "nothing_shown": "no change shown yet",
    },
}


def desktop_text(name: str, language: Language = "da", /, **values: object) -> str:
    """One of :data:`DESKTOP`'s texts with ``values`` filled in."""
    return DESKTOP[language][name].format(**values)
