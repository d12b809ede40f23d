"""Fallback between channels (issue 13, item 5): each family gets the first step of its
category's escalation it can take, and the next one only when nothing reached it in time."""

from __future__ import annotations

import datetime as dt

import pytest
from pydantic import ValidationError
from sqlalchemy import select, update

from broadcaster.core.config import Escalation
from broadcaster.core.models import Delivery, LedgerEntry, Message, utcnow
from broadcaster.core.states import DeliveryStatus, MessageState
from broadcaster.delivery import escalation, expansion
from tests.core.test_households import FAMILIES, import_rows

LOCKDOWN = ("lockdown", "--as", "carmen", "--var", "school=lincoln-hs", "--audience", "all")


@pytest.fixture
def admin(run) -> str:
    return run.json("users", "add", "it")["token"]


def trigger(run, tokens, *extra: str) -> int:
    result = run.json(
        "trigger", *LOCKDOWN, "--channels", "sms,voice,email", "--yes", "--no-follow", *extra,
        token=tokens["carmen"],
    )  # fmt: skip
    return int(result["id"])


def rows(session, message_id: int) -> set[tuple[str, str, str | None]]:
    return {
        (d.channel, d.recipient, d.household)
        for d in session.scalars(select(Delivery).where(Delivery.message_id == message_id))
        if d.channel in ("sms", "voice", "email")
    }


def settle(session, message_id: int, recipients: list[str], status: str, ago_s: float = 0):
    session.execute(
        update(Delivery)
        .where(Delivery.message_id == message_id, Delivery.recipient.in_(recipients))
        .values(status=status, sent_at=utcnow() - dt.timedelta(seconds=ago_s))
    )


def test_the_steps_are_two_or_more_different_channels(district):
    assert district.escalation_for("emergency").steps == ["sms", "voice", "email"]
    assert district.escalation_for("emergency").wait_s == 120
    assert district.escalation_for("closure").steps == []  # every chosen channel at once
    for bad in (["sms"], ["sms", "sms"], ["sms", "fax"]):
        with pytest.raises(ValidationError):
            Escalation(steps=bad)


def test_each_family_starts_where_it_can_and_escalates_until_reached(
    run, tokens, admin, tmp_path, session_factory, district
):
    assert import_rows(run, admin, tmp_path, FAMILIES).exit_code == 0
    mid = trigger(run, tokens)
    assert expansion.expand(run.settings(), district, [mid]) == []
    with session_factory() as session:
        unnamed = session.scalar(
            select(Delivery.household).where(Delivery.recipient == "cy@example.org")
        )
        first = rows(session, mid)
        # A text to each family with a mobile; a call to the one with only a landline; an
        # e-mail to those with neither (the unnamed family's mobile opted out).
        assert first == {
            ("sms", "+19515550101", "H-1"),
            ("sms", "+19515550102", "H-2"),
            ("voice", "+19515550113", "H-3"),
            ("email", "li@xn--bcher-kva.example", "H-4"),
            ("email", "cy@example.org", unnamed),
        }
        assert session.get(Message, mid).escalating
        # H-1's text failed; H-2's was sent 3 minutes ago and never delivered; H-3 answered.
        settle(session, mid, ["+19515550101"], DeliveryStatus.FAILED)
        settle(session, mid, ["+19515550102"], DeliveryStatus.SENT, ago_s=180)
        settle(session, mid, ["+19515550113"], DeliveryStatus.DELIVERED)
        settle(session, mid, ["li@xn--bcher-kva.example", "cy@example.org"], "sent")
        session.get(Message, mid).state = MessageState.PARTIALLY_SENT  # it had finished

    with session_factory() as session:
        planned = escalation.due(session, district, utcnow())
    with session_factory() as session:
        # A call to each number of H-1 (its mobile and its landline) and to H-2's mobile,
        # though H-2 chose texts only: an emergency uses every channel.
        assert rows(session, mid) - first == {
            ("voice", "+19515550101", "H-1"),
            ("voice", "+19515550111", "H-1"),
            ("voice", "+19515550102", "H-2"),
        }
        assert sum(len(b.ids) for b in planned) == 3
        assert session.get(Message, mid).state == MessageState.DISPATCHING  # going out again
        # The calls are still to be placed: nobody is due anything more yet.
        assert escalation.due(session, district, utcnow()) == []
        second = rows(session, mid)
        settle(session, mid, ["+19515550101", "+19515550111"], DeliveryStatus.FAILED)
        settle(session, mid, ["+19515550102"], DeliveryStatus.DELIVERED)

    with session_factory() as session:
        escalation.due(session, district, utcnow())
    with session_factory() as session:
        assert rows(session, mid) - second == {
            ("email", "ana@example.org", "H-1"),
            ("email", "pablo@example.org", "H-1"),
        }
        # The e-mails bounce: H-1 has had every step, and nothing is left to try.
        settle(session, mid, ["ana@example.org", "pablo@example.org"], DeliveryStatus.FAILED)

    with session_factory() as session:
        assert escalation.due(session, district, utcnow()) == []
    with session_factory() as session:
        assert not session.get(Message, mid).escalating
        escalated = session.scalars(
            select(LedgerEntry.event).where(
                LedgerEntry.message_id == mid, LedgerEntry.event == "delivery.escalated"
            )
        ).all()
        assert len(escalated) == 2


def test_a_text_sent_moments_ago_waits_and_nothing_escalates_after_valid_until(
    run, tokens, admin, tmp_path, session_factory, district
):
    assert import_rows(run, admin, tmp_path, FAMILIES).exit_code == 0
    mid = trigger(run, tokens)
    assert expansion.expand(run.settings(), district, [mid]) == []
    with session_factory() as session:
        settle(session, mid, ["+19515550101", "+19515550102"], DeliveryStatus.SENT, ago_s=30)
        # H-3's only number, its landline, did not answer: it has nothing left to try, and is
        # never picked again (it would crowd out the families that have).
        settle(session, mid, ["+19515550113"], DeliveryStatus.FAILED)
    with session_factory() as session:
        before = rows(session, mid)
        message = session.get(Message, mid)
        ordered = escalation.steps(district, message)
        waited = utcnow() - dt.timedelta(seconds=120)
        assert escalation._due_families(session, district, message, ordered, waited) == []
        assert escalation.due(session, district, utcnow()) == []  # within the 2 minutes
        settle(session, mid, ["+19515550101", "+19515550102"], DeliveryStatus.FAILED)
        session.get(Message, mid).valid_until = utcnow() - dt.timedelta(seconds=1)
    with session_factory() as session:
        assert escalation.due(session, district, utcnow()) == []
    with session_factory() as session:
        assert rows(session, mid) == before and not session.get(Message, mid).escalating


def test_a_closure_sends_every_chosen_channel_at_once(
    run, tokens, admin, tmp_path, session_factory, district, compose_closure
):
    from tests.conftest import submit_and_approve

    assert import_rows(run, admin, tmp_path, FAMILIES).exit_code == 0
    draft = compose_closure("--channels", "sms,voice")
    submit_and_approve(run, tokens, draft)
    assert expansion.expand(run.settings(), district, [draft["id"]]) == []
    with session_factory() as session:
        channels = {c for c, _, _ in rows(session, draft["id"])}
        assert channels == {"sms", "voice"} and not session.get(Message, draft["id"]).escalating


SHARING = [
    # A grandparent's mobile on two families' rows; the second family also has a landline.
    "H-A,951-555-0201,,,en,lincoln-hs,12,9,,no",
    "H-B,951-555-0201,951-555-0212,,es,lincoln-hs,12,9,,no",
    # Another shared mobile, whose text is delivered: both families are reached by it.
    "H-C,951-555-0203,,c@example.org,en,lincoln-hs,12,9,,no",
    "H-D,951-555-0203,,,en,lincoln-hs,12,9,,no",
]


def test_a_number_two_families_share_is_sent_once_and_counts_for_both(
    run, tokens, admin, tmp_path, session_factory, district
):
    assert import_rows(run, admin, tmp_path, SHARING).exit_code == 0
    mid = trigger(run, tokens)
    assert expansion.expand(run.settings(), district, [mid]) == []
    with session_factory() as session:
        first = rows(session, mid)
        assert first == {("sms", "+19515550201", "H-A"), ("sms", "+19515550203", "H-C")}
        settle(session, mid, ["+19515550201"], DeliveryStatus.FAILED)
        settle(session, mid, ["+19515550203"], DeliveryStatus.DELIVERED)
    with session_factory() as session:
        escalation.due(session, district, utcnow())
    with session_factory() as session:
        # Both families the failed text was for are due a call: the shared mobile once, and
        # H-B's own landline. H-D was reached by the text it shares with H-C.
        assert rows(session, mid) - first == {
            ("voice", "+19515550201", "H-A"),
            ("voice", "+19515550212", "H-B"),
        }
        settle(session, mid, ["+19515550212"], DeliveryStatus.FAILED)
        session.execute(
            update(Delivery)
            .where(Delivery.message_id == mid, Delivery.channel == "voice")
            .where(Delivery.recipient == "+19515550201")
            .values(status=DeliveryStatus.DELIVERED)
        )
    view = run.json("reach", str(mid), "--as", "ana", token=tokens["ana"])
    by_family = {f["household"]: f for f in view["households"]}
    assert sorted(by_family) == ["H-A", "H-B", "H-C", "H-D"]
    assert {h: (f["status"], f["channel"]) for h, f in by_family.items()} == {
        "H-A": ("reached", "voice"),
        "H-B": ("reached", "voice"),
        "H-C": ("reached", "sms"),
        "H-D": ("reached", "sms"),
    }
    assert [(t["channel"], t["status"]) for t in by_family["H-B"]["tried"]] == [
        ("sms", "failed"),
        ("voice", "delivered"),
        ("voice", "failed"),
    ]
    assert view["by_channel"] == {"sms": 2, "voice": 2, "email": 0}
