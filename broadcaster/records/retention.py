"""Retention: what the district's schedule says is past its period, and its destruction.

A message's period runs from its communication: the last change to any of its deliveries or, when
nothing was delivered, to the message itself. Past `retention.years_for(category)` its content is
destroyed: the payloads of its ledger entries (the chain keeps every hash, so it still verifies),
its renditions' text, variables, findings, approval reasons and acknowledged warnings, its web
alert's body (and so its published page: the public site is rewritten once the purge commits)
and its recipients' phone numbers and e-mail addresses. Past `retention.sms_recipient_days`
only those go: in its texts', calls' and e-mails' deliveries and in the ledger payloads that
name them. The message's row (template, category, kind, state, author, dates) stays as the
index of what was destroyed. Opt-out entries (STOP, START) name a phone and no message; they go
after the SMS period too. Families' replies kept in the inbox (records/inbox.py) count from their
arrival: their numbers go after the SMS period, their text, number and family after the years of
the category of the message they answer (`years` when none).

Nothing covered by a legal hold is touched. Each purge writes one destruction record to the
ledger: what (messages, scopes, entries), when, by which rule, by whom.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass, field
from typing import Any

from sqlalchemy import String, cast, func, literal, or_, select, update
from sqlalchemy.orm import Session

from broadcaster.core import db, ledger
from broadcaster.core.config import DistrictConfig
from broadcaster.core.config_fields import FAMILY_CHANNELS
from broadcaster.core.models import (
    Approval,
    Delivery,
    Finding,
    InboundText,
    LedgerEntry,
    LedgerPayload,
    Message,
    RecordDestruction,
    RecordHold,
    Rendition,
    User,
    WebAlert,
    utcnow,
)
from broadcaster.core.permissions import require
from broadcaster.core.redaction import EMAIL, PHONE
from broadcaster.core.wording import count
from broadcaster.delivery.alert_store import announce_change
from broadcaster.records.holds import covers, covers_moment, list_holds

RECIPIENTS, CONTENT = "recipients", "content"
OPT_EVENTS = ("contact.opted_out", "contact.opted_in")
REDACTED = "[redacted]"


@dataclass(frozen=True)
class Due:
    """One message past a period: what goes, and under which rule."""

    message: int
    category: str
    scope: str  # recipients | content
    rule: str
    communicated: str
    entries: list[int]
    phone_numbers: int


@dataclass(frozen=True)
class Held:
    message: int
    scope: str
    holds: list[int]


@dataclass
class Plan:
    due: list[Due] = field(default_factory=list)
    held: list[Held] = field(default_factory=list)
    opt_out_entries: list[int] = field(default_factory=list)
    # Kept texts (MessageSids): their number goes, or their content; and those a hold keeps.
    inbox_numbers: list[str] = field(default_factory=list)
    inbox_content: list[str] = field(default_factory=list)
    inbox_held: list[str] = field(default_factory=list)
    record: int | None = None  # the destruction record, once applied

    @property
    def entries(self) -> list[int]:
        return sorted({s for d in self.due for s in d.entries} | set(self.opt_out_entries))

    @property
    def empty(self) -> bool:
        return not (self.due or self.opt_out_entries or self.inbox_numbers or self.inbox_content)

    def as_dict(self) -> dict[str, Any]:
        return {
            "due": [asdict(d) for d in self.due],
            "held": [asdict(h) for h in self.held],
            "opt_out_entries": self.opt_out_entries,
            "inbox": {
                "numbers": len(self.inbox_numbers),
                "content": len(self.inbox_content),
                "held": len(self.inbox_held),
            },
            "ledger_payloads": len(self.entries),
            "destruction_record": self.record,
        }


def add_years(moment: dt.datetime, years: int) -> dt.datetime:
    try:
        return moment.replace(year=moment.year + years)
    except ValueError:  # 29 February
        return moment.replace(year=moment.year + years, day=28)


def plan(session: Session, district: DistrictConfig, now: dt.datetime | None = None) -> Plan:
    """What a purge now would destroy, and what holds keep. Changes nothing."""
    now = now or utcnow()
    retention = district.retention
    done = _destroyed(session)
    holds = list_holds(session)
    last_delivery = dict(
        session.execute(
            select(Delivery.message_id, func.max(Delivery.updated_at)).group_by(Delivery.message_id)
        ).all()
    )
    result = Plan()
    rows = session.execute(
        select(Message.id, Message.category, Message.created_at, Message.updated_at).order_by(
            Message.id
        )
    )
    for mid, category, created, updated in rows:
        if (mid, CONTENT) in done:
            continue
        communicated = max(filter(None, [updated, last_delivery.get(mid)]))
        years = retention.years_for(category)
        days = retention.sms_recipient_days
        if now >= add_years(communicated, years):
            scope, rule = CONTENT, f"{category}: {count(years, 'year')} after the communication"
        elif days and (mid, RECIPIENTS) not in done and now >= communicated + dt.timedelta(days):
            scope = RECIPIENTS
            rule = f"SMS recipients: {count(days, 'day')} after the communication"
        else:
            continue
        phones = _phones(session, mid)
        if scope == RECIPIENTS and not phones:
            continue
        holding = [h.id for h in holds if covers(h, mid, created, communicated)]
        if holding:
            result.held.append(Held(mid, scope, holding))
            continue
        result.due.append(
            Due(
                mid,
                category,
                scope,
                rule,
                communicated.isoformat(),
                _entries(session, mid, scope, phones),
                len(phones),
            )
        )
    if retention.sms_recipient_days:
        cutoff = now - dt.timedelta(days=retention.sms_recipient_days)
        opt_outs = session.execute(
            select(LedgerEntry.seq, LedgerEntry.created_at)
            .join(LedgerPayload, LedgerPayload.seq == LedgerEntry.seq)
            .where(LedgerEntry.event.in_(OPT_EVENTS), LedgerPayload.body.is_not(None))
            .order_by(LedgerEntry.seq)
        )
        for seq, created_at in opt_outs:
            moment = dt.datetime.fromisoformat(created_at)
            if moment <= cutoff and not any(covers_moment(h, moment) for h in holds):
                result.opt_out_entries.append(seq)
    _inbox_due(session, district, holds, now, result)
    return result


def _inbox_due(
    session: Session, district: DistrictConfig, holds: list[RecordHold], now: dt.datetime, out: Plan
) -> None:
    """The kept texts past a period; held while a hold covers the message they answer or the
    moment they came."""
    retention = district.retention
    held_messages = {h.message_id for h in holds if h.message_id is not None}
    rows = session.execute(
        select(
            InboundText.message_sid,
            InboundText.received_at,
            InboundText.message_id,
            InboundText.phone,
            InboundText.body,
            Message.category,
        )
        .outerjoin(Message, Message.id == InboundText.message_id)
        .where(or_(InboundText.body.is_not(None), InboundText.phone.is_not(None)))
        .order_by(InboundText.received_at)
    )
    days = retention.sms_recipient_days
    for sid, received, message_id, phone, body, category in rows:
        years = retention.years_for(category) if category else retention.years
        if body is not None and now >= add_years(received, years):
            scope = out.inbox_content
        elif phone is not None and days and now >= received + dt.timedelta(days=days):
            scope = out.inbox_numbers
        else:
            continue
        if message_id in held_messages or any(covers_moment(h, received) for h in holds):
            out.inbox_held.append(sid)
        else:
            scope.append(sid)


def _destroyed(session: Session) -> set[tuple[int, str]]:
    rows = session.execute(select(RecordDestruction.message_id, RecordDestruction.scope))
    return {(mid, scope) for mid, scope in rows}


def _phones(session: Session, message_id: int) -> set[str]:
    """The phone numbers and e-mail addresses still recorded in the message's texts, calls and
    e-mails."""
    recipients = session.scalars(
        select(Delivery.recipient).where(
            Delivery.message_id == message_id, Delivery.channel.in_(FAMILY_CHANNELS)
        )
    )
    return {r for r in recipients if PHONE.fullmatch(r) or EMAIL.fullmatch(r)}


def _entries(session: Session, message_id: int, scope: str, phones: set[str]) -> list[int]:
    """The message's ledger entries whose payloads go: all of them for its content, those that
    name one of its recipients for the recipients."""
    rows = session.execute(
        select(LedgerEntry.seq, LedgerPayload.body)
        .join(LedgerPayload, LedgerPayload.seq == LedgerEntry.seq)
        .where(LedgerEntry.message_id == message_id, LedgerPayload.body.is_not(None))
        .order_by(LedgerEntry.seq)
    )
    if scope == CONTENT:
        return [seq for seq, _ in rows]
    return [
        seq
        for seq, body in rows
        if any(p in phones for p in [*PHONE.findall(body), *EMAIL.findall(body)])  # type: ignore[arg-type]  # not NULL here
    ]


def purge(
    session: Session,
    district: DistrictConfig,
    actor: User,
    dry_run: bool = False,
    now: dt.datetime | None = None,
) -> Plan:
    """Destroy what is past retention and not on hold, with one destruction record; or, with
    `dry_run`, only say what would go."""
    require(actor, "manage_records", district)
    result = plan(session, district, now)
    if dry_run or result.empty:
        return result
    rules = sorted({d.rule for d in result.due})
    days = district.retention.sms_recipient_days
    if result.opt_out_entries and days:  # opt-outs are only due when the period is set
        rules.append(f"opt-outs: {count(days, 'day')} after the request")
    if result.inbox_numbers or result.inbox_content:
        rules.append("families' texts: from their arrival")
    details = {
        "messages": [
            {
                "message": d.message,
                "category": d.category,
                "scope": d.scope,
                "rule": d.rule,
                "communicated": d.communicated,
                "entries": len(d.entries),
                "phone_numbers": d.phone_numbers,
            }
            for d in result.due
        ],
        "opt_out_entries": len(result.opt_out_entries),
        "inbox_numbers": len(result.inbox_numbers),
        "inbox_texts": len(result.inbox_content),
        "by": actor.name,
    }
    record = ledger.purge_payloads(session, result.entries, "; ".join(rules), actor.name, details)
    done = _destroyed(session)
    for due in result.due:
        _redact_phones(session, due.message)
        scopes = [RECIPIENTS]
        if due.scope == CONTENT:
            _destroy_content(session, due.message, record)
            scopes.append(CONTENT)
        for scope in scopes:
            if (due.message, scope) not in done:
                session.add(
                    RecordDestruction(
                        message_id=due.message,
                        scope=scope,
                        rule=due.rule,
                        record_seq=record,
                        destroyed_by=actor.name,
                    )
                )
    _destroy_inbox(session, result)
    session.flush()
    result.record = record
    _republish_after_commit(session, district)
    return result


def _republish_after_commit(session: Session, district: DistrictConfig) -> None:
    """Destroyed text leaves the published site too: once the purge commits, a web worker
    rewrites it (the store's fingerprint, web/alerts.store_state, counts destructions)."""
    settings = session.info.get(db.SETTINGS)
    if district.site_dir is not None and settings is not None:
        db.after_commit(session, lambda: announce_change(settings))


def _redact_phones(session: Session, message_id: int) -> None:
    sms = (Delivery.message_id == message_id, Delivery.channel.in_(FAMILY_CHANNELS))
    # Each row keeps a distinct value: (message, channel, account, recipient) is unique.
    # updated_at is left alone: it is when the communication happened.
    session.execute(
        update(Delivery)
        .where(*sms)
        .values(
            recipient=literal("[redacted #") + cast(Delivery.id, String) + literal("]"),
            error_raw=None,
        )
        .execution_options(synchronize_session=False)
    )
    named = Delivery.error.contains("+") | Delivery.error.contains("@")
    for delivery in session.scalars(select(Delivery).where(*sms, named)):
        delivery.error = EMAIL.sub(REDACTED, PHONE.sub(REDACTED, delivery.error or ""))


def _destroy_inbox(session: Session, result: Plan) -> None:
    """Kept texts: their numbers, or their text, number and family; each row keeps its
    MessageSid (a replay of it stays refused) and the message it answered."""
    gone = {"phone": None, "body": None, "household": None, "truncated": False}
    for sids, values in ((result.inbox_numbers, {"phone": None}), (result.inbox_content, gone)):
        if sids:
            session.execute(
                update(InboundText)
                .where(InboundText.message_sid.in_(sids))
                .values(**values)
                .execution_options(synchronize_session=False)
            )


def _destroy_content(session: Session, message_id: int, record: int) -> None:
    marker = f"[destroyed under the retention schedule: ledger entry {record}]"
    published = select(Delivery.provider_id).where(
        Delivery.message_id == message_id,
        Delivery.channel == "web",
        Delivery.provider_id.is_not(None),
    )
    for statement in (
        update(Rendition).where(Rendition.message_id == message_id).values(text=marker),
        update(Finding).where(Finding.message_id == message_id).values(detail=marker),
        update(Approval).where(Approval.message_id == message_id).values(acknowledged_warnings=[]),
        update(Approval)
        .where(Approval.message_id == message_id, Approval.reason.is_not(None))
        .values(reason=marker),
        update(Message).where(Message.id == message_id).values(variables={}),
        update(WebAlert).where(WebAlert.id.in_(published)).values(body=marker),
    ):
        session.execute(statement.execution_options(synchronize_session=False))
