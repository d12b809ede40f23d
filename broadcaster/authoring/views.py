"""How a message is shown: typed view models (pydantic) of its renditions, findings and targets,
its preview (unsaved) or draft, its summary in a list, and everything about it (approvals and
timeline too), each with the function that builds it (`preview_view`, `draft_view`,
`summary_view`, `detail_view`). The API answers them, the CLI prints them (and --json dumps
them), the console renders them, and web/openapi.py documents the API's responses from these
same classes.

The base class and the shared pieces (id and state, timing) are in delivery/views.py.
"""

from __future__ import annotations

from typing import Any, Literal, cast
from zoneinfo import ZoneInfo

from pydantic.json_schema import SkipJsonSchema
from sqlalchemy.orm import Session

from broadcaster.authoring import plan, where
from broadcaster.authoring.catalog import Catalog
from broadcaster.authoring.render import KINDS
from broadcaster.authoring.where import NoticeKind
from broadcaster.core import ledger
from broadcaster.core.config import DistrictConfig
from broadcaster.core.config_fields import FAMILY_CHANNELS
from broadcaster.core.models import Message
from broadcaster.core.models import Rendition as RenditionRow
from broadcaster.core.states import MessageState
from broadcaster.delivery.expansion import audience_reach
from broadcaster.delivery.views import (
    Channel,
    Identified,
    Timing,
    View,
    absent_when_none,
    timing_view,
)

Kind = Literal[KINDS]  # type: ignore[valid-type]  # a Literal made at run time


class Rendition(View):
    channel: Channel
    locale: str
    text: str
    length: int
    # x only: twitter-text v3 weighted length (limit 280)
    weighted_length: int | SkipJsonSchema[None] = absent_when_none()
    # sms only, as are the next two
    encoding: Literal["GSM-7", "UCS-2"] | SkipJsonSchema[None] = absent_when_none()
    segments: int | SkipJsonSchema[None] = absent_when_none()
    ucs2_chars: list[str] | SkipJsonSchema[None] = absent_when_none()
    # voice only: about how long a call takes to say it, in seconds (limit 60)
    seconds: float | SkipJsonSchema[None] = absent_when_none()
    # Before dispatch only: where it will be posted or whom it reaches (authoring/where.py),
    # e.g. "@RiversideUSD", "reply thread on @RiversideUSD", "families whose language is es (3)".
    where: str | SkipJsonSchema[None] = absent_when_none()


class FindingView(View):
    check: str
    severity: Literal["block", "warn"]
    channel: Channel | None
    locale: str | None
    detail: str


class NoticeView(View):
    """A warning of the preview that is not a policy finding: nobody acknowledges it and it
    does not change the approval (authoring/where.py)."""

    kind: NoticeKind
    channel: Channel | None
    locale: str | None
    detail: str


class TargetView(View):
    channel: Channel
    account: str


class ChannelPlanView(View):
    """How long one channel's deliveries take from the start (now, or the send at), through
    the account's rate (plan.py): texts count SMS segments, a post one request."""

    account: str
    recipients: int
    segments: int
    rate_per_s: float
    seconds: float
    last_accepted_at: str  # ISO 8601 with the district's offset
    # Texts and calls held through the district's quiet hours start then (ISO 8601).
    waits_until: str | SkipJsonSchema[None] = absent_when_none()


class Content(View):
    """What composing made of a message (Preview adds its timing)."""

    template: str
    template_version: str
    kind: Kind
    renditions: list[Rendition]
    findings: list[FindingView]
    # A rendition posted nowhere, a draft translation: warnings no approver acknowledges.
    notices: list[NoticeView] = []
    targets: list[TargetView]
    audience: str | None
    recipients: int  # families the message reaches (texts, calls or e-mails)
    # channel -> mobiles texted, numbers called, addresses e-mailed
    reach: dict[str, int] = {}
    # Before dispatch only: the send-time plan per channel (after it, the after-action report
    # shows the plan the approval recorded beside what happened).
    plan: dict[Channel, ChannelPlanView] | SkipJsonSchema[None] = absent_when_none()


# Until these, a preview shows how sending would go; from dispatch on, the report does.
PLANNED_STATES = (
    MessageState.DRAFT,
    MessageState.SUBMITTED,
    MessageState.APPROVED,
    MessageState.SCHEDULED,
)


class Preview(Timing, Content):
    """What a message would be: nothing is saved."""


class Draft(Preview, Identified):
    """A composed message, with its id and state."""


class Summary(Identified):
    template: str
    title: str
    kind: Kind
    author: str
    created_at: str
    updated_at: str


Decision = Literal["approved", "rejected"]


class ApprovalView(View):
    decision: Decision
    by: str
    basis: str
    reason: str | None
    acknowledged_warnings: list[str]
    at: str


class TimelineStep(View):
    seq: int
    at: str
    event: str
    actor: str | None
    details: dict[str, Any] | SkipJsonSchema[None] = absent_when_none()


class Detail(Draft, Summary):
    """Everything about a message."""

    category: str
    variables: dict[str, Any]
    channels: list[Channel]
    locales: list[str]
    pre_approved: bool
    needs_review: bool
    approvals: list[ApprovalView]
    timeline: list[TimelineStep]


def rendition_view(row: RenditionRow) -> Rendition:
    """A rendition with the counts its platform limits: X's weighted length, an SMS's
    encoding and segments."""
    metrics, sms = row.metrics, row.channel == "sms"
    return Rendition(
        channel=row.channel,
        locale=row.locale,
        text=row.text,
        length=metrics["length"],
        weighted_length=metrics["weighted_length"] if row.channel == "x" else None,
        encoding=metrics["encoding"] if sms else None,
        segments=metrics["segments"] if sms else None,
        ucs2_chars=metrics["ucs2_chars"] if sms else None,
        seconds=metrics["seconds"] if row.channel == "voice" else None,
    )


def preview_view(
    session: Session, district: DistrictConfig, message: Message, catalog: Catalog | None = None
) -> Preview:
    """The message as it would go out; with the `catalog`, its draft translations named."""
    texting = any(channel in FAMILY_CHANNELS for channel in message.channels)
    shown = message.state in PLANNED_STATES
    reached = audience_reach(session, district, message) if texting else None
    # Before dispatch only: after it, the deliveries say where each rendition went.
    found = where.routes(district, message, reached.by_channel if reached else {}) if shown else []
    renditions = [rendition_view(r) for r in message.renditions]
    if found:
        renditions = [
            v.model_copy(update={"where": r.where}) for v, r in zip(renditions, found, strict=True)
        ]
    return Preview(
        template=message.template,
        template_version=message.template_version,
        kind=message.kind,
        renditions=renditions,
        findings=[FindingView.model_validate(f, from_attributes=True) for f in message.findings],
        notices=[
            NoticeView.model_validate(n, from_attributes=True)
            for n in where.notices(catalog, message, found)
        ],
        targets=[TargetView.model_validate(t, from_attributes=True) for t in message.targets],
        audience=message.audience,
        recipients=reached.families if reached else 0,
        reach={c: reached.total(c) for c in reached.by_channel} if reached else {},
        plan=_plan_view(session, district, message) if shown else None,
        **dict(timing_view(message, district)),
    )


def _plan_view(
    session: Session, district: DistrictConfig, message: Message
) -> dict[str, ChannelPlanView]:
    zone = ZoneInfo(district.district.time_zone)
    planned = plan.as_json(plan.for_message(session, district, message), zone)
    return {channel: ChannelPlanView(**entry) for channel, entry in planned.items()}


def draft_view(
    session: Session, district: DistrictConfig, message: Message, catalog: Catalog | None = None
) -> Draft:
    shown = preview_view(session, district, message, catalog)
    return Draft(id=message.id, state=message.state, **dict(shown))


def summary_view(message: Message) -> Summary:
    return Summary(
        id=message.id,
        state=message.state,
        template=message.template,
        title=message.title,
        kind=message.kind,
        author=message.author.name,
        created_at=message.created_at.isoformat(),
        updated_at=message.updated_at.isoformat(),
    )


def detail_view(
    session: Session, district: DistrictConfig, message: Message, catalog: Catalog | None = None
) -> Detail:
    shown = dict(summary_view(message)) | dict(preview_view(session, district, message, catalog))
    return Detail(
        **shown,
        category=message.category,
        variables=message.variables,
        channels=message.channels,
        locales=message.locales,
        pre_approved=message.pre_approved,
        needs_review=message.needs_review,
        approvals=[
            ApprovalView(
                decision=cast(Decision, a.decision),  # pydantic checks it all the same
                by=a.user.name,
                basis=a.basis,
                reason=a.reason,
                acknowledged_warnings=a.acknowledged_warnings,
                at=a.created_at.isoformat(),
            )
            for a in message.approvals
        ],
        timeline=[
            TimelineStep(
                seq=entry.seq,
                at=entry.created_at,
                event=entry.event,
                actor=entry.actor,
                details=_timeline_details(payload) if payload else None,
            )
            for entry, payload in ledger.entries_for(
                session, message.id, events=("message.", "approval.", "dispatch.")
            )
        ],
    )


def _timeline_details(payload: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in payload.items() if k in ("from", "to", "reason", "basis", "decision")}
