"""How a message is shown: typed view models (pydantic) of its renditions, findings and targets,
its preview (unsaved) or draft, its summary in a list, and everything about it (approvals and
timeline too). The API answers them, the CLI prints them (and --json dumps them), the console
renders them, and web/openapi.py documents the API's responses from these same classes.

The base class and the shared pieces (id and state, timing) are in delivery/views.py.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic.json_schema import SkipJsonSchema

from broadcaster.authoring.render import KINDS
from broadcaster.delivery.views import Channel, Identified, Timing, View, absent_when_none

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


class FindingView(View):
    check: str
    severity: Literal["block", "warn"]
    channel: Channel | None
    locale: str | None
    detail: str


class TargetView(View):
    channel: Channel
    account: str


class Content(View):
    """What composing made of a message (Preview adds its timing)."""

    template: str
    template_version: str
    kind: Kind
    renditions: list[Rendition]
    findings: list[FindingView]
    targets: list[TargetView]
    audience: str | None
    recipients: int


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


class ApprovalView(View):
    decision: Literal["approved", "rejected"]
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
