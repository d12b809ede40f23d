"""Published web alerts, as the public pages and feeds read them.

A web alert is one row of the web channel's store (`web_alerts`, core/models.py WebAlert) that a
delivery links to its message (`deliveries.provider_id`). Its languages are the message's
web renditions, its CAP fields those of the message's template.

Corrections follow CAP: an alert whose `reply_to` names an earlier alert is an Update of it (the
earlier one is then superseded and leaves the active list), and a retracted alert is answered by a
Cancel that references it. Plain service functions: no Flask.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from babel import Locale, UnknownLocaleError
from sqlalchemy import (
    ColumnElement,
    ColumnExpressionArgument,
    Select,
    and_,
    case,
    exists,
    func,
    or_,
    select,
)
from sqlalchemy.orm import Session, aliased

from broadcaster.authoring.catalog import CapFields, Catalog
from broadcaster.core.config import DistrictConfig
from broadcaster.core.errors import BroadcasterError
from broadcaster.core.languages import direction, language
from broadcaster.core.models import Delivery, Message, RecordDestruction, Rendition, WebAlert
from broadcaster.core.text_safety import clean_for_xml
from broadcaster.records.retention import CONTENT
from broadcaster.web import cap

SEVERITIES = ("Extreme", "Severe", "Moderate", "Minor", "Unknown")
# Rehearsals are published to the test accounts' pages but never listed with real alerts.
PUBLIC_KINDS = ("actual",)
# How long a withdrawn alert stays in the CAP index as a Cancel, so that aggregators drop it.
CANCEL_NOTICE = dt.timedelta(hours=24)
# The CAP fields of a message whose template has since left the library.
UNKNOWN_CAP: dict[str, Any] = dict(
    category="Other", severity="Unknown", urgency="Unknown", certainty="Unknown"
)


class Status(StrEnum):
    ACTIVE = "active"
    EXPIRED = "expired"
    WITHDRAWN = "withdrawn"
    UPDATED = "updated"  # a later alert replaces it


@dataclass(frozen=True)
class Version:
    """The alert in one language: the web rendition as published, and its plain text."""

    locale: str
    language: str  # the language's own name, e.g. "Español"
    direction: str  # "ltr" or "rtl"
    html: str  # rendered from a district template with every value HTML-escaped
    headline: str
    description: str


@dataclass(frozen=True)
class Alert:
    id: str
    message_id: int
    kind: str  # actual | exercise | test
    title: str
    cap: CapFields
    published_at: dt.datetime
    expires_at: dt.datetime | None  # the earlier of the store's expiry and the message's
    retracted_at: dt.datetime | None
    reply_to: str | None
    superseded_by: str | None
    versions: tuple[Version, ...]

    @property
    def headline(self) -> str:
        return self.versions[0].headline if self.versions else self.title

    @property
    def label(self) -> str:
        """The severity in words, so that colour is never the only sign of it."""
        return "Alert" if self.cap.severity == "Unknown" else f"{self.cap.severity} alert"

    @property
    def severity_rank(self) -> int:
        return SEVERITIES.index(self.cap.severity)

    @property
    def msg_type(self) -> str:
        if self.retracted_at is not None:
            return "Cancel"
        return "Update" if self.reply_to else "Alert"

    @property
    def changed_at(self) -> dt.datetime:
        return self.retracted_at or self.published_at

    def status(self, now: dt.datetime) -> Status:
        if self.retracted_at is not None:
            return Status.WITHDRAWN
        if self.superseded_by is not None:
            return Status.UPDATED
        if self.expires_at is not None and self.expires_at <= now:
            return Status.EXPIRED
        return Status.ACTIVE


@dataclass(frozen=True)
class StoreState:
    """A fingerprint of everything the public pages show: equal states render equal pages."""

    key: tuple[Any, ...]
    last_modified: dt.datetime | None


# --- queries -----------------------------------------------------------------------------------

_LINK = and_(Delivery.provider_id == WebAlert.id, Delivery.channel == "web")


def _expiry() -> ColumnElement[dt.datetime]:
    """The earlier of the store's `expires_at` and the message's `valid_until`, either may be
    NULL (a NULL comparison falls through to the COALESCE)."""
    store, message = WebAlert.expires_at, Message.valid_until
    return case((store < message, store), else_=func.coalesce(message, store))


def _successor_of(alert_id: ColumnExpressionArgument[str]) -> Select:
    """Published alerts that correct this one, newest first. A withdrawn correction still
    supersedes: its Cancel references the whole thread."""
    later = aliased(WebAlert, name="later")
    link = aliased(Delivery)
    return (
        select(later.id)
        .join(link, and_(link.provider_id == later.id, link.channel == "web"))
        .where(later.reply_to == alert_id)
        .order_by(later.published_at.desc())
    )


def _published() -> Select:
    return (
        select(
            WebAlert.id,
            WebAlert.published_at,
            WebAlert.retracted_at,
            WebAlert.reply_to,
            _expiry().label("expiry"),
            _successor_of(WebAlert.id).limit(1).scalar_subquery().label("superseded_by"),
            Message.id.label("message_id"),
            Message.kind,
            Message.template,
            Message.title,
            Message.locales,
        )
        .join(Delivery, _LINK)
        .join(Message, Message.id == Delivery.message_id)
    )


def active_alerts(
    session: Session,
    district: DistrictConfig,
    catalog: Catalog,
    now: dt.datetime,
    kinds: Sequence[str] = PUBLIC_KINDS,
) -> list[Alert]:
    """Alerts in effect now (not expired, withdrawn or superseded), most severe first, then
    newest. A message posted to several web accounts is listed once."""
    expiry = _expiry()
    rows = session.execute(
        _published()
        .where(
            WebAlert.retracted_at.is_(None),
            or_(expiry.is_(None), expiry > now),
            ~exists(_successor_of(WebAlert.id)),
            Message.kind.in_(kinds),
        )
        .order_by(WebAlert.published_at, WebAlert.id)
    ).all()
    alerts = _build(session, district, catalog, _first_per_message(rows))
    return sorted(alerts, key=lambda a: (a.severity_rank, -a.published_at.timestamp(), a.id))


def withdrawn_alerts(
    session: Session,
    district: DistrictConfig,
    catalog: Catalog,
    now: dt.datetime,
    kinds: Sequence[str] = PUBLIC_KINDS,
) -> list[Alert]:
    """Alerts withdrawn within CANCEL_NOTICE, newest withdrawal first."""
    rows = session.execute(
        _published()
        .where(WebAlert.retracted_at > now - CANCEL_NOTICE, Message.kind.in_(kinds))
        .order_by(WebAlert.published_at, WebAlert.id)
    ).all()
    alerts = _build(session, district, catalog, _first_per_message(rows))
    return sorted(alerts, key=lambda a: a.changed_at, reverse=True)


def get_alert(
    session: Session, district: DistrictConfig, catalog: Catalog, alert_id: str
) -> Alert | None:
    """One alert whatever its status (see `Alert.status`), or None."""
    rows = session.execute(_published().where(WebAlert.id == alert_id)).all()
    built = _build(session, district, catalog, rows[:1])
    return built[0] if built else None


def references(session: Session, district: DistrictConfig, alert: Alert) -> list[cap.Reference]:
    """The earlier alerts this one corrects, oldest first (CAP references the whole thread)."""
    found: list[cap.Reference] = []
    seen, earlier = {alert.id}, alert.reply_to
    while earlier and earlier not in seen:
        seen.add(earlier)
        row = session.execute(
            select(Delivery.message_id, WebAlert.published_at, WebAlert.reply_to)
            .join(Delivery, _LINK)
            .where(WebAlert.id == earlier)
        ).first()
        if row is None:
            break
        ident = cap.identifier(district, row.message_id)
        found.append(cap.Reference(ident, row.published_at))
        earlier = row.reply_to
    return found[::-1]


def cap_document(session: Session, district: DistrictConfig, alert: Alert) -> bytes:
    """The alert as CAP 1.2: an Alert, an Update of the alerts it corrects, or, once withdrawn,
    a Cancel of it (a new identifier that references it)."""
    earlier = references(session, district, alert)
    ident = cap.identifier(district, alert.message_id)
    infos = [
        cap.Info(v.locale, v.headline, v.description, district.district.name)
        for v in alert.versions
    ]
    common: dict[str, Any] = dict(
        kind=alert.kind, cap=alert.cap, infos=infos, expires=alert.expires_at
    )
    if alert.retracted_at is not None:
        own = cap.Reference(ident, alert.published_at)
        return cap.document(
            district,
            ident=f"{ident}-cancel",
            sent=alert.retracted_at,
            msg_type="Cancel",
            references=(*earlier, own),
            **common,
        )
    return cap.document(
        district,
        ident=ident,
        sent=alert.published_at,
        msg_type="Update" if earlier else "Alert",
        references=tuple(earlier),
        **common,
    )


def store_state(session: Session, now: dt.datetime) -> StoreState:
    """One aggregate query that changes whenever a page could: an alert published or linked to
    its message, withdrawn, past its expiry, or past its Cancel notice, or a message's content
    destroyed by a retention purge (its pages then show the destruction marker)."""
    expiry = _expiry()
    retracted = WebAlert.retracted_at
    destroyed = select(func.max(RecordDestruction.id)).where(RecordDestruction.scope == CONTENT)
    row = session.execute(
        select(
            func.count(),
            func.max(WebAlert.published_at),
            func.max(retracted),
            func.count(retracted),
            func.max(case((expiry <= now, expiry))),
            func.max(case((retracted <= now - CANCEL_NOTICE, retracted))),
            destroyed.scalar_subquery(),
        )
        .select_from(WebAlert)
        .join(Delivery, _LINK)
        .join(Message, Message.id == Delivery.message_id)
    ).one()
    count, published, withdrawn, n_withdrawn, expired, notice_over, last_destroyed = row
    moments = [
        published,
        withdrawn,
        expired,
        notice_over + CANCEL_NOTICE if notice_over is not None else None,
    ]
    known = [m for m in moments if m is not None]
    key = (count, n_withdrawn, last_destroyed, *(m.isoformat() if m else None for m in moments))
    return StoreState(key, max(known) if known else None)


def page_inputs(session: Session, now: dt.datetime) -> dict[str, str]:
    """Every alert a page is served for (`get_alert` finds it: linked to its message by a web
    delivery, whatever its status or kind), with what its page and CAP document are made of
    beyond its own immutable text: its status at `now`, what it corrects and what replaced it,
    and whether a purge destroyed its text or theirs. Equal inputs render equal files, given the
    same district file and templates."""
    destroyed = set(
        session.scalars(
            select(RecordDestruction.message_id).where(RecordDestruction.scope == CONTENT)
        )
    )
    rows = session.execute(_published()).all()
    message_of = {row.id: row.message_id for row in rows}
    inputs = {}
    for row in rows:
        expired = row.expiry is not None and row.expiry <= now
        messages = (row.message_id, message_of.get(row.reply_to), message_of.get(row.superseded_by))
        key = [row.retracted_at, row.reply_to, row.superseded_by, row.expiry, expired]
        inputs[row.id] = json.dumps([*key, *(m in destroyed for m in messages)], default=str)
    return inputs


def awaiting_link(session: Session, since: dt.datetime) -> bool:
    """An alert stored since `since` that no delivery links yet: a worker stores it, then records
    its delivery, and only then do the pages show it."""
    linked = exists(select(Delivery.id).where(_LINK))
    return (
        session.scalar(select(WebAlert.id).where(WebAlert.published_at >= since, ~linked).limit(1))
        is not None
    )


# --- building ----------------------------------------------------------------------------------


def _first_per_message(rows: Sequence[Any]) -> list[Any]:
    """Rows come oldest first: keep each message's first publication."""
    first: dict[int, Any] = {}
    for row in rows:
        first.setdefault(row.message_id, row)
    return list(first.values())


def _build(
    session: Session, district: DistrictConfig, catalog: Catalog, rows: Sequence[Any]
) -> list[Alert]:
    if not rows:
        return []
    by_message: dict[int, dict[str, str]] = {}
    for r in session.scalars(
        select(Rendition).where(
            Rendition.message_id.in_({row.message_id for row in rows}), Rendition.channel == "web"
        )
    ):
        # Stored text is cleaned as it is read: a character XML cannot carry, in a row written
        # before the way in refused it, is shown as U+FFFD instead of taking every feed down.
        by_message.setdefault(r.message_id, {})[r.locale] = clean_for_xml(r.text)
    fields: dict[str, CapFields] = {}
    alerts = []
    for row in rows:
        title = clean_for_xml(row.title)
        if row.template not in fields:
            fields[row.template] = _cap_fields(catalog, row.template, title)
        texts = by_message.get(row.message_id, {})
        ordered = [loc for loc in row.locales if loc in texts]
        alerts.append(
            Alert(
                id=row.id,
                message_id=row.message_id,
                kind=row.kind,
                title=title,
                cap=fields[row.template],
                published_at=row.published_at,
                expires_at=row.expiry,
                retracted_at=row.retracted_at,
                reply_to=row.reply_to,
                superseded_by=row.superseded_by,
                versions=tuple(
                    _version(loc, texts[loc], district.district.name) for loc in ordered
                ),
            )
        )
    return alerts


def _cap_fields(catalog: Catalog, template: str, title: str) -> CapFields:
    try:
        return catalog.get(template).meta.cap
    except BroadcasterError:
        return CapFields(event=title, **UNKNOWN_CAP)


def _version(locale: str, html: str, area: str) -> Version:
    info = cap.info_from_web(locale, html, area)
    known = language(locale)
    if known is not None and "-" not in locale:
        name = known.label
    else:  # a regional variant ("Español (México)") or a language a district added itself
        try:
            parsed = Locale.parse(locale, sep="-")
            name = parsed.get_display_name(parsed) or locale
        except (UnknownLocaleError, ValueError):
            name = locale
    return Version(
        locale=locale,
        language=name[:1].upper() + name[1:],
        direction=direction(locale),
        html=html,
        headline=info.headline,
        description=info.description,
    )
