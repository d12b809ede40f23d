"""After-action report: one message from composition (or trigger) to its last delivery on each
channel: who did what and on what basis, what failed and what was retried. A send from a
pre-approved template (the incident path) is flagged for review.

Each channel shows the send-time plan the approval recorded (authoring/plan.py) beside what
happened: how many were accepted, the first and the last, and how long after the plan's start.
Read from the ledger (steps, actors, retries, the plan) and the deliveries (outcomes and times);
phone numbers are masked. Nothing is written. A delivery's time is when its worker recorded it,
in groups of a few dozen, so the actual times can lag the provider's by a few seconds.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from broadcaster.authoring.plan import PLANNED
from broadcaster.core import ledger
from broadcaster.core.models import Delivery, Message
from broadcaster.core.redaction import mask_contacts, mask_recipient
from broadcaster.core.states import SUCCEEDED, DeliveryStatus

# Ledger events that are steps of the message (deliveries are summarized per channel instead).
STEP_PREFIXES = ("message.", "approval.", "dispatch.", "delivery.requeued")
RETRY_EVENTS = ("delivery.retry", "delivery.unconfirmed")
FAILED = (DeliveryStatus.FAILED, DeliveryStatus.EXPIRED)
LIST_AT_MOST = 50  # failures and retries listed per channel; the counts are always complete


def _target(channel: str, recipient: str) -> str:
    return mask_recipient(channel, recipient)


def _seconds(start: str | None, end: str | None) -> float | None:
    if not start or not end:
        return None
    delta = dt.datetime.fromisoformat(end) - dt.datetime.fromisoformat(start)
    return round(delta.total_seconds(), 1)


def after_action(session: Session, message: Message) -> dict[str, Any]:
    # Only the events the report reads: not the message's delivery entries, one per recipient.
    entries = ledger.entries_for(
        session, message.id, events=(*STEP_PREFIXES, *RETRY_EVENTS, PLANNED)
    )
    steps = [
        {
            "at": entry.created_at,
            "event": entry.event,
            "actor": entry.actor,
            **_step_details(entry.event, payload),
        }
        for entry, payload in entries
        if entry.event.startswith(STEP_PREFIXES)
    ]
    composed = next((s["at"] for s in steps if s["event"] == "message.composed"), None)
    approvals = ("message.approve", "message.approve_pre_approved")
    approved = next((s["at"] for s in steps if s["event"] in approvals), None)
    channels = _channels(session, message, entries, approved)
    lasts = [c["last_delivery"] for c in channels.values() if c["last_delivery"]]
    last = max(lasts, key=dt.datetime.fromisoformat) if lasts else None
    return {
        "id": message.id,
        "title": message.title,
        "template": f"{message.template}@{message.template_version}",
        "category": message.category,
        "kind": message.kind,
        "state": message.state,
        "started": "triggered" if message.pre_approved else "composed",
        "author": message.author.name,
        "people": [
            {"at": s["at"], "who": s["actor"], "did": s["event"].split(".", 1)[1]}
            for s in steps
            if s["actor"]
        ],
        "approvals": [
            {
                "decision": a.decision,
                "by": a.user.name,
                "basis": a.basis,
                "acknowledged_warnings": a.acknowledged_warnings,
                "reason": a.reason,
                "at": a.created_at.isoformat(),
            }
            for a in message.approvals
        ],
        "timeline": _timeline(steps, channels),
        "channels": channels,
        "durations_s": {
            "composition_to_approval": _seconds(composed, approved),
            "composition_to_last_delivery": _seconds(composed, last),
        },
        "review": _review(message),
    }


def _step_details(event: str, payload: dict | None) -> dict[str, Any]:
    if not payload:
        return {}
    keys = ("to", "basis", "reason", "acknowledged_warnings", "deliveries", "decision")
    return {k: payload[k] for k in keys if payload.get(k)}


def _channels(
    session: Session,
    message: Message,
    entries: list[tuple[Any, dict | None]],
    approved: str | None,
) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    counts: dict[str, Counter[str]] = {}

    def channel(name: str) -> dict[str, Any]:
        counts.setdefault(name, Counter())
        return out.setdefault(
            name,
            {
                "deliveries": 0,
                "statuses": {},
                "first_delivery": None,
                "last_delivery": None,
                "failures": [],
                "failed": 0,
                "retries": [],
                "retried": 0,
            },
        )

    for name in message.channels:
        channel(name)
    # Counted and timed in the database, and only the listed failures read: a message to a
    # million phones is a million rows.
    grouped = session.execute(
        select(
            Delivery.channel,
            Delivery.status,
            func.count(),
            func.min(Delivery.sent_at),
            func.max(Delivery.sent_at),
        )
        .where(Delivery.message_id == message.id)
        .group_by(Delivery.channel, Delivery.status)
    )
    for name, status, count, first, last in grouped:
        view = channel(name)
        view["deliveries"] += count
        counts[name][status] += count
        if status in FAILED:
            view["failed"] += count
        if status in SUCCEEDED and first is not None and last is not None:
            if view["first_delivery"] is None or first < _dt(view["first_delivery"]):
                view["first_delivery"] = first.isoformat()
            if view["last_delivery"] is None or last > _dt(view["last_delivery"]):
                view["last_delivery"] = last.isoformat()
    for name, view in out.items():
        if view["failed"]:
            view["failures"] = [
                {
                    "target": _target(d.channel, d.recipient),
                    "status": d.status,
                    "error": mask_contacts(d.error),
                    "attempts": d.attempts,
                    "at": d.updated_at.isoformat(),
                }
                for d in session.scalars(
                    select(Delivery)
                    .where(
                        Delivery.message_id == message.id,
                        Delivery.channel == name,
                        Delivery.status.in_(FAILED),
                    )
                    .order_by(Delivery.id)
                    .limit(LIST_AT_MOST)
                )
            ]
    for entry, payload in entries:
        if entry.event not in RETRY_EVENTS or not payload or "channel" not in payload:
            continue
        view = channel(payload["channel"])
        view["retried"] += 1
        if len(view["retries"]) < LIST_AT_MOST:
            view["retries"].append(
                {
                    "at": entry.created_at,
                    "event": entry.event,
                    "target": _target(payload["channel"], payload.get("recipient") or ""),
                    "attempt": payload.get("attempt"),
                    "error": mask_contacts(payload.get("error")),
                }
            )
    planned = next((p for e, p in reversed(entries) if e.event == PLANNED and p), None)
    for name, view in out.items():
        view["planned"] = planned["channels"].get(name) if planned else None
        view["actual"] = {
            "recipients": sum(counts[name][s] for s in SUCCEEDED),
            "first_accepted_at": view["first_delivery"],
            "last_accepted_at": view["last_delivery"],
            "seconds": _seconds(planned["start"], view["last_delivery"]) if planned else None,
        }
        view["statuses"] = dict(sorted(counts[name].items()))
        view["approval_to_first_s"] = _seconds(approved, view["first_delivery"])
        view["approval_to_last_s"] = _seconds(approved, view["last_delivery"])
    return out


def _dt(value: str) -> dt.datetime:
    return dt.datetime.fromisoformat(value)


def _timeline(
    steps: list[dict[str, Any]], channels: dict[str, dict[str, Any]]
) -> list[dict[str, Any]]:
    timeline = [dict(step) for step in steps]
    for name, view in channels.items():
        for key, label in (("first_delivery", "first"), ("last_delivery", "last")):
            if view[key]:
                timeline.append({"at": view[key], "event": f"{name}: {label} delivery"})
    return sorted(timeline, key=lambda step: _dt(step["at"]))


def _review(message: Message) -> dict[str, Any] | None:
    """A pre-approved send skipped the second person: say so, with what was acknowledged."""
    if not message.needs_review:
        return None
    approval = next((a for a in message.approvals if a.decision == "approved"), None)
    return {
        "flagged": True,
        "why": "sent from a pre-approved template without a second person's approval",
        "basis": approval.basis if approval else None,
        "by": approval.user.name if approval else None,
        "at": approval.created_at.isoformat() if approval else None,
        "acknowledged_warnings": approval.acknowledged_warnings if approval else [],
    }
