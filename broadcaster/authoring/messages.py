"""Message services: compose, submit, approve, reject, cancel (views.py shows a message).

The CLI (and later the web console and API) are thin layers over these functions. Each runs inside
the caller's transaction, so a refusal leaves nothing behind.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from broadcaster.authoring import plan
from broadcaster.authoring.audience import choose as choose_audience
from broadcaster.authoring.catalog import Catalog
from broadcaster.authoring.checks import BLOCK, WARN, Finding, check_rendition
from broadcaster.authoring.limits import measure
from broadcaster.authoring.render import KINDS, render_all
from broadcaster.authoring.targets import resolve_targets, unserved, unspoken
from broadcaster.authoring.variables import parse_values, untranslated
from broadcaster.core import ledger
from broadcaster.core.config import DistrictConfig, Settings
from broadcaster.core.config_fields import CHANNELS, FAMILY_CHANNELS
from broadcaster.core.errors import REASON, BadInput, Needed, NotFound, Refused
from broadcaster.core.languages import language
from broadcaster.core.lifecycle import STATES, transition
from broadcaster.core.models import Approval, Message, User, utcnow
from broadcaster.core.models import Finding as FindingRow
from broadcaster.core.models import Rendition as RenditionRow
from broadcaster.core.models import Target as TargetRow
from broadcaster.core.permissions import require
from broadcaster.core.states import REHEARSAL_KINDS, MessageKind, MessageState
from broadcaster.core.text_safety import check_reason
from broadcaster.core.wording import a_or_an, count
from broadcaster.delivery import approvals, checkpointing, scheduling
from broadcaster.delivery.dispatch import Batch
from broadcaster.delivery.expansion import audience_size

QUIET_REASON_MAX = 300  # messages.quiet_override's length


@dataclass(frozen=True)
class Request:
    """What an author asks for; everything is checked by `compose`."""

    template: str
    values: dict[str, str] = field(default_factory=dict)
    channels: list[str] | None = None
    locales: list[str] | None = None
    kind: str = MessageKind.ACTUAL
    audience: str | None = None  # "all" or terms such as "school:lincoln-hs route:12"
    valid_until: str | None = None  # district local time, YYYY-MM-DDTHH:MM
    send_at: str | None = None  # district local time; approved, it waits until then


def compose(
    session: Session, district: DistrictConfig, catalog: Catalog, author: User, request: Request
) -> Message:
    """Render, measure and check a new draft, and record all of it in the ledger."""
    require(author, "compose", district)
    return build(session, district, catalog, author, request)


def build(
    session: Session,
    district: DistrictConfig,
    catalog: Catalog,
    author: User,
    request: Request,
    follows: Message | None = None,
    follow_kind: str | None = None,
) -> Message:
    """`compose` without the role check, also for follow-ups (corrections.py). A follow-up texts
    its original's recipients, so it takes the original's audience instead of asking for one."""
    template = catalog.get(request.template)
    kind, channels, locales, raw_values = (
        request.kind,
        request.channels,
        request.locales,
        request.values,
    )
    if kind not in KINDS:
        raise BadInput(f"unknown kind {kind!r} (kinds: {', '.join(KINDS)})")
    channels = _choose(
        "channel", channels, template.offered, template.name, default=template.channels
    )
    default_locales = [loc for loc in district.district.locales if loc in template.locales]
    locales = _choose("locale", locales, template.locales, template.name, default_locales)
    values = parse_values(template, raw_values, district)
    if follows is not None:
        audience = follows.audience
    else:
        audience = choose_audience(district, channels, kind, request.audience)
    valid_until, send_at = _timing(request, district, template.meta.default_valid_hours)
    renditions = render_all(template, values, district, channels, locales, kind)
    targets, findings = resolve_targets(district, channels, kind)
    renditions, no_voice = unspoken(district, targets, renditions)
    findings.extend(no_voice)
    for locale in locales:
        for name in untranslated(template, values, locale):
            findings.append(
                Finding(
                    "untranslated",
                    WARN,
                    None,
                    locale,
                    f"{name!r} is shown as typed in the {_language_name(locale)} messages; "
                    f"give its translation as {name}.{locale} to translate it",
                )
            )
    measured = []
    for rendition in renditions:
        metrics = measure(rendition.channel, rendition.text)
        measured.append((rendition, metrics))
        findings.extend(
            check_rendition(district, rendition.channel, rendition.locale, rendition.text, metrics)
        )

    message = Message(
        template=template.name,
        template_version=template.version,
        title=template.meta.title,
        category=template.meta.category,
        kind=kind,
        state=MessageState.DRAFT,
        variables=values,
        channels=channels,
        locales=locales,
        author=author,
        pre_approved=False,
        needs_review=False,
        audience=audience,
        valid_until=valid_until,
        send_at=send_at,
        urgent=template.meta.category == "emergency",
        follows_id=follows.id if follows is not None else None,
        follow_kind=follow_kind,
    )
    message.renditions = [
        RenditionRow(channel=r.channel, locale=r.locale, text=r.text, metrics=m)
        for r, m in measured
    ]
    message.targets = [TargetRow(channel=c, account=a) for c, a in targets]
    findings.extend(unreachable(session, district, message))
    findings.extend(plan.findings(session, district, message))
    message.findings = [FindingRow(**f.as_dict()) for f in findings]
    session.add(message)
    session.flush()

    actor = author.name
    ledger.append(
        session,
        "message.composed",
        {
            "template": template.name,
            "template_version": template.version,
            "kind": kind,
            "variables": values,
            "channels": channels,
            "locales": locales,
            "targets": [{"channel": c, "account": a} for c, a in targets],
            "audience": audience,
            "valid_until": valid_until.isoformat() if valid_until else None,
            "send_at": send_at.isoformat() if send_at else None,
            "follows": follows.id if follows is not None else None,
            "follow_kind": follow_kind,
            "author": actor,
        },
        message_id=message.id,
        actor=actor,
    )
    for rendition, metrics in measured:
        ledger.append(
            session,
            "rendition.rendered",
            {
                "channel": rendition.channel,
                "locale": rendition.locale,
                "text": rendition.text,
                "metrics": metrics,
            },
            message_id=message.id,
            actor=actor,
        )
    for finding in findings:
        ledger.append(
            session, "finding.raised", finding.as_dict(), message_id=message.id, actor=actor
        )
    return message


def unreachable(session: Session, district: DistrictConfig, message: Message) -> list[Finding]:
    """What would send the message to nobody: texts to an audience (or a test allowlist) with
    no phone number in it, a target only the sandbox serves where none runs. Checked at compose
    and again at approval, when the audience is frozen and contacts may have changed. A
    follow-up texts whom its original reached, and is never held back for it."""
    findings = unserved(
        district, [(t.channel, t.account) for t in message.targets], message.kind, _sandbox_url()
    )
    phoning = [t.channel for t in message.targets if t.channel in FAMILY_CHANNELS]
    if phoning and message.follows_id is None and not audience_size(session, district, message):
        if message.kind in REHEARSAL_KINDS:
            detail = f"no phone number is on the test allowlist for {a_or_an(message.kind)} message"
        else:
            detail = f"no phone number matches {message.audience}"
        findings.append(Finding("no_recipients", BLOCK, phoning[0], None, detail))
    return findings


def _sandbox_url() -> str | None:
    # The deployment's setting, which the web app, the CLI and the workers share.
    return Settings().sandbox_url


def _timing(
    request: Request, district: DistrictConfig, default_hours: int
) -> tuple[dt.datetime, dt.datetime | None]:
    """valid_until and send_at, both in the future, and the send before the end. Without a
    valid until, the template's default from the send time (now, or send at)."""
    send_at = parse_local_time(request.send_at, district, "send at") if request.send_at else None
    if not request.valid_until:
        return (send_at or utcnow()) + dt.timedelta(hours=default_hours), send_at
    valid_until = parse_local_time(request.valid_until, district)
    if send_at and send_at >= valid_until:
        raise BadInput(
            f"send at {request.send_at} must be before valid until {request.valid_until}: "
            "nothing may go out after valid until"
        )
    return valid_until, send_at


def parse_local_time(
    value: str, district: DistrictConfig, what: str = "valid until"
) -> dt.datetime:
    """District local time → UTC; it must be in the future."""
    try:
        local = dt.datetime.fromisoformat(value)
    except ValueError:
        raise BadInput(
            f"{what} {value!r} is not a date and time (write YYYY-MM-DDTHH:MM)"
        ) from None
    if local.tzinfo is None:
        local = local.replace(tzinfo=ZoneInfo(district.district.time_zone))
    moment = local.astimezone(dt.UTC)
    if moment <= utcnow():
        raise BadInput(f"{what} {value} ({district.district.time_zone}) is already past")
    return moment


def _choose(
    what: str,
    asked: list[str] | None,
    available: list[str],
    template: str,
    default: list[str] | None = None,
) -> list[str]:
    if not asked:
        chosen = default if default is not None else available
        if not chosen:
            raise BadInput(f"template {template} has no {what} the district publishes in")
        return chosen
    for item in asked:
        if what == "channel" and item not in CHANNELS:
            raise BadInput(f"unknown channel {item!r} (channels: {', '.join(CHANNELS)})")
        if item not in available:
            raise BadInput(
                f"template {template} has no {item} {what} (it has: {', '.join(available)})"
            )
    return list(dict.fromkeys(asked))


def get_message(session: Session, message_id: int) -> Message:
    message = session.get(Message, message_id)
    if message is None:
        raise NotFound(f"no message {message_id}", Needed("message"))
    return message


def blocking(message: Message) -> list[FindingRow]:
    return [f for f in message.findings if f.severity == BLOCK]


def warnings(message: Message) -> list[FindingRow]:
    return [f for f in message.findings if f.severity == WARN]


def _refuse_blocked(message: Message) -> None:
    blocks = blocking(message)
    if blocks:
        first = blocks[0]
        where = "/".join(filter(None, [first.channel, first.locale]))
        raise Refused(
            f"message {message.id} has {count(len(blocks), 'blocking finding')}, the first "
            f"{first.check} "
            f"({where}): {first.detail}; compose a corrected message"
        )


def _refuse_unreachable(session: Session, district: DistrictConfig, message: Message) -> None:
    found = unreachable(session, district, message)
    if found:
        raise Refused(f"message {message.id} cannot be approved: {found[0].detail}")


def submit(session: Session, district: DistrictConfig, message: Message, actor: User) -> None:
    _refuse_blocked(message)
    transition(session, message, "submit", actor, district)
    approvals.request(session, district, message)


def approve(
    session: Session,
    district: DistrictConfig,
    message: Message,
    approver: User,
    ack_warnings: bool = False,
    quiet_override: str | None = None,
    basis: str = "second person",
) -> None:
    """`quiet_override`: the approver's reason to send texts and calls at once, even in the
    district's quiet hours (kept with the approval in the ledger). `basis`: how the second
    person approved, as the records show it ("text reply" for authoring/text_approval.py)."""
    override = _override_reason(quiet_override)
    _refuse_blocked(message)
    _refuse_unreachable(session, district, message)
    pending = warnings(message)
    if pending and not ack_warnings:
        raise Refused(
            f"message {message.id} has {count(len(pending), 'warning')} to review and "
            f"acknowledge before it is approved, the first {pending[0].check}: "
            f"{pending[0].detail}",
            Needed("ack_warnings"),
        )
    acknowledged = [f"{f.check}: {f.detail}" for f in pending]
    extra = {"quiet_hours_override": override} if override else {}
    transition(
        session,
        message,
        "approve",
        approver,
        district,
        acknowledged_warnings=acknowledged,
        **extra,
    )
    message.quiet_override = override
    _record_approval(session, message, approver, "approved", basis, acknowledged)
    plan.record(session, district, message)


def _override_reason(reason: str | None) -> str | None:
    if reason is None:
        return None
    reason = check_reason(
        "quiet hours override",
        reason,
        "say why the texts and calls cannot wait for quiet hours to end",
    )
    if len(reason) > QUIET_REASON_MAX:
        raise BadInput(f"the quiet hours override's reason is over {QUIET_REASON_MAX} characters")
    return reason


def approve_and_dispatch(
    session: Session,
    district: DistrictConfig,
    message: Message,
    approver: User,
    ack_warnings: bool = False,
    quiet_override: str | None = None,
    basis: str = "second person",
) -> list[Batch]:
    """Approval is the go: approve and write the delivery rows in one transaction, so no caller
    can approve without dispatching; the commit enqueues the batches. With a
    future send_at the message is `scheduled` instead, and there are no batches yet."""
    approve(session, district, message, approver, ack_warnings, quiet_override, basis)
    return scheduling.dispatch_or_schedule(session, district, message)


def approve_pre_approved(
    session: Session, district: DistrictConfig, catalog: Catalog, message: Message, commander: User
) -> None:
    """The incident path: a pre-approved template needs no second person, but is flagged for
    after-action review."""
    template = catalog.get(message.template)
    if not template.meta.pre_approved:
        raise Refused(f"template {template.name} is not pre-approved; submit it for approval")
    if template.version != message.template_version:
        raise Refused(f"template {template.name} changed since message {message.id} was composed")
    _refuse_blocked(message)
    _refuse_unreachable(session, district, message)
    basis = f"pre-approved template {template.name}@{template.version}"
    acknowledged = [f"{f.check}: {f.detail}" for f in warnings(message)]
    transition(
        session,
        message,
        "approve_pre_approved",
        commander,
        district,
        basis=basis,
        after_action_review=True,
        acknowledged_warnings=acknowledged,
    )
    message.pre_approved = True
    message.needs_review = True
    _record_approval(session, message, commander, "approved", basis, acknowledged)
    plan.record(session, district, message)


def approve_retraction_notice(
    session: Session, district: DistrictConfig, notice: Message, actor: User, reason: str
) -> None:
    """The notice of a retraction (corrections.py) is approved by the retraction itself: the
    person who may retract is the second person, and the reason is kept with the approval."""
    basis = f"retraction of message {notice.follows_id}"
    transition(session, notice, "approve_retraction", actor, district, basis=basis, reason=reason)
    _record_approval(session, notice, actor, "approved", basis, [], reason)
    plan.record(session, district, notice)


def trigger(
    session: Session, district: DistrictConfig, catalog: Catalog, commander: User, request: Request
) -> Message:
    """Compose from a pre-approved template and approve it at once (the caller dispatches).
    Checked before anything is written: the role, and that the template is pre-approved."""
    require(commander, "approve_pre_approved", district)
    if not catalog.get(request.template).meta.pre_approved:
        raise Refused(
            f"template {request.template} is not pre-approved for incidents; compose and submit it"
        )
    message = compose(session, district, catalog, commander, request)
    approve_pre_approved(session, district, catalog, message, commander)
    message.urgent = True
    return message


def trigger_and_dispatch(
    session: Session, district: DistrictConfig, catalog: Catalog, commander: User, request: Request
) -> tuple[Message, list[Batch]]:
    """The whole incident path in one transaction; its commit enqueues the batches (none
    while the message is `scheduled`)."""
    message = trigger(session, district, catalog, commander, request)
    return message, scheduling.dispatch_or_schedule(session, district, message)


def reject(
    session: Session,
    district: DistrictConfig,
    message: Message,
    approver: User,
    reason: str,
    basis: str = "second person",
) -> None:
    reason = check_reason("reason", reason, "a rejection needs a reason for the author", REASON)
    transition(session, message, "reject", approver, district, reason=reason)
    _record_approval(session, message, approver, "rejected", basis, [], reason)
    checkpointing.sign_after_commit(session, district)


def cancel(session: Session, district: DistrictConfig, message: Message, actor: User) -> None:
    transition(session, message, "cancel", actor, district)
    checkpointing.sign_after_commit(session, district)


def _record_approval(
    session: Session,
    message: Message,
    user: User,
    decision: str,
    basis: str,
    acknowledged: list[str],
    reason: str | None = None,
) -> None:
    session.add(
        Approval(
            message_id=message.id,
            user=user,
            decision=decision,
            basis=basis,
            reason=reason,
            acknowledged_warnings=acknowledged,
        )
    )
    session.flush()
    ledger.append(
        session,
        "approval.recorded",
        {
            "decision": decision,
            "by": user.name,
            "basis": basis,
            "acknowledged_warnings": acknowledged,
            "reason": reason,
        },
        message_id=message.id,
        actor=user.name,
    )


def list_messages(session: Session, state: str | None = None) -> list[Message]:
    if state is not None and state not in STATES:
        raise BadInput(f"unknown state {state!r} (states: {', '.join(STATES)})")
    query = select(Message).order_by(Message.id.desc())
    if state:
        query = query.where(Message.state == state)
    return list(session.scalars(query))


def _language_name(locale: str) -> str:
    known = language(locale)
    return known.english if known else locale
