"""The message state machine: one table of allowed transitions, one function that applies them.

`transition` checks the table, the actor's role and the ownership rule, changes the state with a
conditional UPDATE (so two racing approvals cannot both win) and writes the ledger entry in the
same database transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, cast

from sqlalchemy import CursorResult, update
from sqlalchemy.orm import Session

from broadcaster.core import ledger
from broadcaster.core.config import DistrictConfig
from broadcaster.core.errors import Refused
from broadcaster.core.models import Message, User, utcnow
from broadcaster.core.permissions import action_words, effective_roles, require
from broadcaster.core.states import MessageState

S = MessageState  # short, for the table below

Ownership = Literal["own", "not_own", "any"]


@dataclass(frozen=True)
class Transition:
    action: str
    source: MessageState
    target: MessageState
    permission: str | None  # key of permissions.ACTION_ROLES; None for the system's own steps
    ownership: Ownership = "any"
    # Holders of this role are exempt from an "own" rule (an approver may cancel anyone's draft).
    exempt_role: str | None = None


TRANSITIONS: tuple[Transition, ...] = (
    Transition("submit", S.DRAFT, S.SUBMITTED, "submit", "own"),
    Transition("approve", S.SUBMITTED, S.APPROVED, "approve", "not_own"),
    Transition("reject", S.SUBMITTED, S.REJECTED, "reject", "not_own"),
    # An incident commander sends a pre-approved template at once; flagged for after-action review.
    Transition("approve_pre_approved", S.DRAFT, S.APPROVED, "approve_pre_approved"),
    Transition("cancel", S.DRAFT, S.CANCELLED, "cancel", "own", exempt_role="approver"),
    Transition("cancel", S.SUBMITTED, S.CANCELLED, "cancel", "own", exempt_role="approver"),
    Transition("cancel", S.APPROVED, S.CANCELLED, "cancel", "own", exempt_role="approver"),
    Transition("dispatch", S.APPROVED, S.DISPATCHING, None),
    # A future send_at: the message waits for the periodic task (scheduling.dispatch_due).
    Transition("schedule", S.APPROVED, S.SCHEDULED, None),
    Transition("dispatch", S.SCHEDULED, S.DISPATCHING, None),
    Transition("cancel", S.SCHEDULED, S.CANCELLED, "cancel", "own", exempt_role="approver"),
    # Its valid_until passed before it could go out: nothing is sent.
    Transition("expire", S.SCHEDULED, S.EXPIRED, None),
    Transition("finish_sent", S.DISPATCHING, S.SENT, None),
    Transition("finish_partial", S.DISPATCHING, S.PARTIALLY_SENT, None),
    Transition("finish_failed", S.DISPATCHING, S.FAILED, None),
    Transition("finish_expired", S.DISPATCHING, S.EXPIRED, None),  # every delivery was too late
    # Send again what did not go; deliveries that succeeded are never touched.
    Transition("retry", S.PARTIALLY_SENT, S.DISPATCHING, "retry"),
    Transition("retry", S.FAILED, S.DISPATCHING, "retry"),
    # A call that was busy or not answered is placed again later (provider_callbacks.py): the
    # message is going out again until it has been.
    Transition("recall", S.SENT, S.DISPATCHING, None),
    Transition("recall", S.PARTIALLY_SENT, S.DISPATCHING, None),
    Transition("recall", S.FAILED, S.DISPATCHING, None),
    # A family nothing reached gets the next channel of its category's fallback (escalation.py).
    Transition("escalate", S.SENT, S.DISPATCHING, None),
    Transition("escalate", S.PARTIALLY_SENT, S.DISPATCHING, None),
    Transition("escalate", S.FAILED, S.DISPATCHING, None),
    # Take down what went out (corrections.py): deletions and correction texts are the
    # deliveries of a retraction notice; the message is retracted once every post is down.
    Transition("retract", S.SENT, S.RETRACTING, "retract"),
    Transition("retract", S.PARTIALLY_SENT, S.RETRACTING, "retract"),
    Transition("finish_retracted", S.RETRACTING, S.RETRACTED, None),
    # The notice itself is approved by the retraction: the retracting person is the approver.
    Transition("approve_retraction", S.DRAFT, S.APPROVED, "retract"),
)
# Every state, as the database stores it.
STATES = tuple(state.value for state in S)
_BY_KEY: dict[tuple[str, str], Transition] = {(t.action, t.source): t for t in TRANSITIONS}


def allowed_actions(state: str) -> list[str]:
    return sorted({t.action for t in TRANSITIONS if t.source == state and t.permission})


def transition(
    session: Session,
    message: Message,
    action: str,
    actor: User | None,
    district: DistrictConfig,
    **details: Any,
) -> Transition:
    step = _BY_KEY.get((action, message.state))
    if step is None:
        sources = sorted(t.source.replace("_", " ") for t in TRANSITIONS if t.action == action)
        needed = " or ".join(sources) or "in another state"
        raise Refused(
            f"message {message.id} is {message.state.replace('_', ' ')}; to "
            f"{action_words(action)}, a message must be {needed}"
        )
    if step.permission is not None:
        if actor is None:
            raise Refused(f"to {action_words(action)}, sign in first")
        require(actor, step.permission, district)
        _check_ownership(step, message, actor, district)
    # cast: an UPDATE's result is a CursorResult, which counts the rows it changed
    result = cast(
        "CursorResult[Any]",
        session.execute(
            update(Message)
            .where(Message.id == message.id, Message.state == step.source)
            .values(state=step.target, updated_at=utcnow())
            .execution_options(synchronize_session=False)
        ),
    )
    if result.rowcount != 1:
        raise Refused(f"message {message.id} changed while you were acting on it; look again")
    session.refresh(message)
    ledger.append(
        session,
        f"message.{action}",
        {"action": action, "from": step.source, "to": step.target, **details},
        message_id=message.id,
        actor=actor.name if actor else None,
    )
    return step


def _check_ownership(
    step: Transition, message: Message, actor: User, district: DistrictConfig
) -> None:
    own = message.author_id == actor.id
    if step.ownership == "not_own" and own:
        raise Refused(
            f"{actor.name} wrote message {message.id} and cannot {action_words(step.action)} it: "
            "a second person must (two-person rule)"
        )
    if step.ownership == "own" and not own:
        if step.exempt_role and step.exempt_role in effective_roles(actor, district):
            return
        raise Refused(
            f"only the author ({message.author.name}) may {action_words(step.action)} message "
            f"{message.id}"
        )
