"""Twilio web hooks over real HTTP: signed status callbacks from the sandbox update deliveries;
STOP and START from a phone; forged or unsigned requests get 403 and change nothing."""

from __future__ import annotations

import requests
from sqlalchemy import func, select
from twilio.request_validator import RequestValidator

from broadcaster.accounts import identity
from broadcaster.models import Delivery, HeldCallback, OptOut
from tests.conftest import submit_and_approve


def signed_post(url: str, form: dict, token: str, public: str) -> requests.Response:
    signature = RequestValidator(token).compute_signature(public, form)
    return requests.post(url, data=form, headers={"X-Twilio-Signature": signature}, timeout=10)


def sms_account(run, district):
    account = next(a for a in district.accounts if a.name == "district-sms")
    settings, credentials = identity(account, "actual")
    return settings["account_sid"], credentials["auth_token"]


def test_status_callbacks_mark_texts_delivered_or_failed(
    stack, run, tokens, web_app, tmp_path, session_factory, compose_closure
):
    url = web_app()
    run.env["BROADCASTER_PUBLIC_URL"] = url
    admin = run.json("users", "add", "it")["token"]
    csv = tmp_path / "c.csv"
    csv.write_text("phone,language\n+14155550100,en\n+15005559001,en\n", encoding="utf-8")
    run.json("contacts", "import", str(csv), "--as", "it", token=admin)
    draft = compose_closure("--channels", "sms")
    submit_and_approve(run, tokens, draft)
    stack.start_worker()
    stack.wait_done(draft["id"])

    def settled() -> bool:
        with session_factory() as session:
            return dict(session.execute(select(Delivery.recipient, Delivery.status)).all()) == {
                "+14155550100": "delivered",
                "+15005559001": "failed",
            }

    stack.wait_for(settled, timeout=60)
    with session_factory() as session:
        failed = session.scalars(select(Delivery).where(Delivery.status == "failed")).one()
    assert "30003" in failed.error


def test_a_report_that_arrives_before_the_send_is_recorded_is_held_then_applied(
    stack, run, tokens, web_app, tmp_path, session_factory, compose_closure
):
    """The sandbox accepts the text and reports it delivered while it still holds the answer to
    the send: the report reaches us before the worker knows the message's SID."""
    url = web_app()
    run.env["BROADCASTER_PUBLIC_URL"] = url
    admin = run.json("users", "add", "it")["token"]
    csv = tmp_path / "c.csv"
    csv.write_text("phone,language\n+14155550100,en\n", encoding="utf-8")
    run.json("contacts", "import", str(csv), "--as", "it", token=admin)
    stack.sandbox.set_faults(
        [
            {
                "provider": "twilio",
                "fault": "timeout_after_accept",
                "method": "POST",
                "hold_ms": 600,  # under the 1 s provider timeout: the send succeeds, late
                "count": 1,
            }
        ]
    )
    draft = compose_closure("--channels", "sms")
    submit_and_approve(run, tokens, draft)
    stack.start_worker()
    stack.wait_done(draft["id"])

    def delivered() -> bool:
        with session_factory() as session:
            return session.scalar(select(Delivery.status)) == "delivered"

    stack.wait_for(delivered, timeout=60)
    with session_factory() as session:
        assert session.scalar(select(func.count()).select_from(HeldCallback)) == 0
        [create] = [e for e in stack.sandbox.requests("twilio") if e.get("fault")]
        sid = session.scalar(select(Delivery.provider_id))
    assert create["resource_id"] == sid


def test_forged_or_unsigned_requests_get_403_and_change_nothing(
    run, web_app, district, session_factory
):
    url = web_app()
    sid, token = sms_account(run, district)
    form = {"AccountSid": sid, "From": "+14155550100", "Body": "STOP"}
    hook = f"{url}/hooks/twilio/inbound"
    assert requests.post(hook, data=form, timeout=10).status_code == 403
    assert signed_post(hook, form, "not-the-token", hook).status_code == 403
    assert (
        signed_post(hook, {**form, "AccountSid": "AC" + "9" * 32}, token, hook).status_code == 403
    )
    tampered = {**form, "From": "+14155550199"}
    signature = RequestValidator(token).compute_signature(hook, form)
    response = requests.post(
        hook, data=tampered, headers={"X-Twilio-Signature": signature}, timeout=10
    )
    assert response.status_code == 403
    status = f"{url}/hooks/twilio/status"
    assert (
        requests.post(
            status,
            data={"AccountSid": sid, "MessageSid": "SMx", "MessageStatus": "delivered"},
            timeout=10,
        ).status_code
        == 403
    )
    with session_factory() as session:
        assert session.scalar(select(func.count()).select_from(OptOut)) == 0


def test_stop_then_start(run, web_app, district, session_factory):
    url = web_app()
    sid, token = sms_account(run, district)
    hook = f"{url}/hooks/twilio/inbound"

    def text(body: str, phone: str = "+14155550100") -> str:
        response = signed_post(hook, {"AccountSid": sid, "From": phone, "Body": body}, token, hook)
        assert response.status_code == 200
        return response.text

    def opted_out() -> set[str]:
        with session_factory() as session:
            return set(session.scalars(select(OptOut.phone)))

    assert "no longer receive" in text("  Stop ")
    assert opted_out() == {"+14155550100"}
    assert "<Message>" not in text("STOP")  # confirmed once only
    assert "receive district alerts again" in text("start")
    assert opted_out() == set()
    for word in ("STOPALL", "unsubscribe", "CANCEL", "end", "Quit", "REVOKE", "opt out"):
        text(word, "+14155550102")
        assert opted_out() == {"+14155550102"}, word
        text("UNSTOP", "+14155550102")
    help_reply = text("HELP")
    assert district.district.name in help_reply and "STOP" in help_reply
