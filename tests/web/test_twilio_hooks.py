"""Twilio web hooks over real HTTP: signed status callbacks from the sandbox update deliveries;
STOP and START from a phone; forged or unsigned requests get 403 and change nothing.

The attacks of issue 9 (item 1), each refused or inert: requests signed with the sandbox's public
token where the sandbox is not trusted; one account's signature on another account's texts (now
or held until the SID is recorded); inbound texts not addressed to the signing account; replays;
a report that would move a delivered text back to failed."""

from __future__ import annotations

import logging
import uuid
from concurrent.futures import ThreadPoolExecutor

import requests
from sqlalchemy import func, select
from twilio.request_validator import RequestValidator

from broadcaster.core import db
from broadcaster.core.config import SAMPLE_CONFIG, Settings, load_district
from broadcaster.core.models import Delivery, HeldCallback, InboundText, LedgerEntry, OptOut
from broadcaster.delivery import expansion, provider_callbacks
from broadcaster.delivery.accounts import SANDBOX_TWILIO_TOKEN, identity
from broadcaster.web import create_app
from tests.conftest import ROOT, submit_and_approve

PRODUCTION = ROOT / "deploy" / "production.toml"
PARENT = "+14155550100"


def signed_post(url: str, form: dict, token: str, public: str) -> requests.Response:
    signature = RequestValidator(token).compute_signature(public, form)
    return requests.post(url, data=form, headers={"X-Twilio-Signature": signature}, timeout=10)


def sms_identity(district, name: str) -> tuple[str, str, str]:
    """An SMS account's AccountSid, Messaging Service and auth token as the sandbox serves it:
    all public, as an attacker reads them from this repository."""
    account = next(a for a in district.accounts if a.name == name)
    settings, credentials = identity(account, "test")  # a rehearsal always goes to the sandbox
    return settings["account_sid"], settings["messaging_service_sid"], credentials["auth_token"]


def new_sid() -> str:
    return "SM" + uuid.uuid4().hex


def inbound_form(account_sid: str, body: str, phone: str = PARENT, **extra: str) -> dict:
    sid = new_sid()
    return {
        "AccountSid": account_sid,
        "From": phone,
        "Body": body,
        "MessageSid": sid,
        "SmsSid": sid,
        **extra,
    }


def opted_out(session_factory) -> set[str]:
    with session_factory() as session:
        return set(session.scalars(select(OptOut.phone)))


def statuses(session_factory) -> dict[str, str]:
    with session_factory() as session:
        return dict(session.execute(select(Delivery.provider_id, Delivery.status)).all())


def dispatched_texts(run, tokens, compose_closure, tmp_path, *extra: str) -> None:
    """A closure texted to three parents (or, for --kind test, to the test allowlist), approved
    through the real CLI, and its texts written: its SMS deliveries are queued."""
    admin = run.json("users", "add", "it")["token"]
    csv = tmp_path / "c.csv"
    parents = "".join(f"+1415555010{n},en\n" for n in range(3))
    csv.write_text(f"phone,language\n{parents}", encoding="utf-8")
    run.json("contacts", "import", str(csv), "--as", "it", token=admin)
    draft = compose_closure("--channels", "sms", *extra)
    submit_and_approve(run, tokens, draft)
    settings = run.settings()  # the texts, written as the worker's expand task writes them
    expansion.expand(settings, load_district(settings.config_path), [draft["id"]])


def record_sent(session_factory) -> dict[str, str]:
    """What a worker records when Twilio accepts each queued text: sent, with its SID. Returns
    SID -> the account it was sent through."""
    sent: dict[str, str] = {}
    with session_factory() as session:
        for delivery in session.scalars(select(Delivery).where(Delivery.status == "queued")):
            delivery.status, delivery.provider_id = "sent", new_sid()
            sent[delivery.provider_id] = delivery.account
    return sent


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
    sid, _, token = sms_identity(district, "district-sms")
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
    sid, service, token = sms_identity(district, "district-sms")
    hook = f"{url}/hooks/twilio/inbound"

    def text(body: str, phone: str = "+14155550100") -> str:
        form = inbound_form(sid, body, phone, MessagingServiceSid=service)
        response = signed_post(hook, form, token, hook)
        assert response.status_code == 200
        return response.text

    assert "no longer receive" in text("  Stop ")
    assert opted_out(session_factory) == {"+14155550100"}
    assert "<Message>" not in text("STOP")  # confirmed once only
    assert "receive district alerts again" in text("start")
    assert opted_out(session_factory) == set()
    for word in ("STOPALL", "unsubscribe", "CANCEL", "end", "Quit", "REVOKE", "opt out"):
        text(word, "+14155550102")
        assert opted_out(session_factory) == {"+14155550102"}, word
        text("UNSTOP", "+14155550102")
    help_reply = text("HELP")
    assert district.district.name in help_reply and "STOP" in help_reply


def test_sandbox_signatures_are_refused_where_the_sandbox_is_not_trusted(
    run, tokens, compose_closure, tmp_path, web_app, session_factory
):
    """deploy/production.toml: a test message is sandbox-served and its token is public.
    Whoever signs with it (for any SMS account, as the account itself or as its rehearsal
    identity) can neither opt a parent out nor turn a text into a failure; the district's real
    token still works."""
    dispatched_texts(run, tokens, compose_closure, tmp_path, "--kind", "test")
    sent = record_sent(session_factory)  # the test line's texts, to the test allowlist
    production = load_district(PRODUCTION)
    run.env.update(BROADCASTER_CONFIG=str(PRODUCTION), TWILIO_AUTH_TOKEN="the-real-secret")
    url = web_app()
    inbound, status = f"{url}/hooks/twilio/inbound", f"{url}/hooks/twilio/status"
    for account in production.accounts_for("sms"):
        sid, service, token = sms_identity(production, account.name)
        assert token == SANDBOX_TWILIO_TOKEN
        stop = inbound_form(sid, "STOP", MessagingServiceSid=service)
        assert signed_post(inbound, stop, token, inbound).status_code == 403, account.name
        for provider_id in sent:
            for report in ("failed", "undelivered", "delivered"):
                form = {"AccountSid": sid, "MessageSid": provider_id, "MessageStatus": report}
                assert signed_post(status, form, token, status).status_code == 403
    assert opted_out(session_factory) == set()
    assert set(statuses(session_factory).values()) == {"sent"}
    with session_factory() as session:
        assert session.scalar(select(func.count()).select_from(HeldCallback)) == 0
    # The district's own account, signed with its real token, is believed.
    real = inbound_form(
        "AC00000000000000000000000000000000",
        "STOP",
        MessagingServiceSid="MG00000000000000000000000000000000",
    )
    assert signed_post(inbound, real, "the-real-secret", inbound).status_code == 200
    assert opted_out(session_factory) == {PARENT}


def test_the_app_says_at_start_whose_hooks_it_accepts(tmp_path, monkeypatch, caplog):
    """`broadcaster web` and gunicorn both build the app with create_app: it logs whose hooks it
    accepts and why it refuses the others, never a secret, and warns when the sandbox is
    trusted (a district that copied the sample file and kept that section)."""
    caplog.set_level(logging.INFO, logger="broadcaster")
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", "the-real-secret")
    create_app(Settings(home=tmp_path, config=PRODUCTION))
    said = caplog.text
    assert "accepted for: district-sms (AC00000000000000000000000000000000, its own" in said
    # The drill line texts exercises through the district's own Twilio account.
    assert "drill-sms (AC00000000000000000000000000000000, its own credentials)" in said
    assert "the-real-secret" not in said and SANDBOX_TWILIO_TOKEN not in said
    assert "trusts the provider sandbox" not in said
    caplog.clear()
    create_app(Settings(home=tmp_path, config=SAMPLE_CONFIG))
    assert "district-sms (AC" in caplog.text and "the sandbox's public credentials" in caplog.text
    # Among the start's warnings (doctor's findings on this bare home come too), exactly one
    # says the sandbox is trusted.
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert (
        len([w for w in warnings if "trusts the provider sandbox's public credentials" in w]) == 1
    )


def test_a_status_report_changes_only_texts_the_signing_account_sent(
    run, tokens, compose_closure, tmp_path, web_app, district, session_factory
):
    dispatched_texts(run, tokens, compose_closure, tmp_path)
    sent = record_sent(session_factory)
    assert set(sent.values()) == {"district-sms"}
    url = web_app()
    status = f"{url}/hooks/twilio/status"
    other_sid, _, other_token = sms_identity(district, "test-sms")
    for provider_id in sent:
        for report in ("failed", "undelivered", "delivered"):
            form = {"AccountSid": other_sid, "MessageSid": provider_id, "MessageStatus": report}
            assert signed_post(status, form, other_token, status).status_code == 403
    assert statuses(session_factory) == dict.fromkeys(sent, "sent")
    # The account that sent them is believed.
    sid, _, token = sms_identity(district, "district-sms")
    first = next(iter(sent))
    form = {"AccountSid": sid, "MessageSid": first, "MessageStatus": "delivered"}
    assert signed_post(status, form, token, status).status_code == 204
    assert statuses(session_factory)[first] == "delivered"


def test_a_held_report_is_applied_only_to_a_text_the_signing_account_sent(
    run, tokens, compose_closure, tmp_path, web_app, district, session_factory, db_url
):
    """Reports that arrive before the worker records the SIDs are held with their signer; when
    the SIDs are recorded, another account's report (or one held without a signer, from before
    migration 0009) is dropped and the sending account's is applied."""
    dispatched_texts(run, tokens, compose_closure, tmp_path)
    url = web_app()
    status = f"{url}/hooks/twilio/status"
    foreign, own, unsigned = new_sid(), new_sid(), new_sid()
    other_sid, _, other_token = sms_identity(district, "test-sms")
    sid, _, token = sms_identity(district, "district-sms")
    for report in ("failed", "delivered"):
        form = {"AccountSid": other_sid, "MessageSid": foreign, "MessageStatus": report}
        assert signed_post(status, form, other_token, status).status_code == 204  # held
    form = {"AccountSid": sid, "MessageSid": own, "MessageStatus": "failed", "ErrorCode": "30003"}
    assert signed_post(status, form, token, status).status_code == 204
    with session_factory() as session:
        session.add(HeldCallback(provider_id=unsigned, status="failed"))
        assert session.scalar(select(func.count()).select_from(HeldCallback)) == 4
        # The worker records the three SIDs for district-sms texts, then applies what is held.
        queued = session.scalars(select(Delivery).where(Delivery.status == "queued")).all()
        for delivery, provider_id in zip(queued, (foreign, own, unsigned), strict=True):
            delivery.status, delivery.provider_id = "sent", provider_id
    with db.session_scope(db_url) as session:
        provider_callbacks.apply_held(session, district, [foreign, own, unsigned])
    now = statuses(session_factory)
    assert (now[foreign], now[own], now[unsigned]) == ("sent", "failed", "sent")
    with session_factory() as session:
        assert session.scalar(select(func.count()).select_from(HeldCallback)) == 0


def test_an_inbound_text_must_be_addressed_to_the_signing_account(
    run, web_app, tmp_path, session_factory
):
    """district-sms sends from a number of its own and its Messaging Service; test-sms signs
    with a token anyone can read here. Neither may speak for the other's numbers."""
    config = tmp_path / "district.toml"
    sample = SAMPLE_CONFIG.read_text(encoding="utf-8")
    config.write_text(
        sample.replace(
            'roster = "roster.csv"', f'roster = "{SAMPLE_CONFIG.parent}/roster.csv"'
        ).replace(
            "rate_per_second = 100.0\n",
            'rate_per_second = 100.0\nsending_numbers = ["+1 951-555-0160"]\n',
        ),
        encoding="utf-8",
    )
    run.env["BROADCASTER_CONFIG"] = str(config)
    district = load_district(config)
    url = web_app()
    hook = f"{url}/hooks/twilio/inbound"
    sid, service, token = sms_identity(district, "district-sms")
    test_sid, test_service, test_token = sms_identity(district, "test-sms")
    not_addressed = [
        {},  # no To, no service
        {"To": "+19515550199"},  # a number that is nobody's sending number
        {"To": "+19515550100"},  # the district's published number
        {"To": "+19515550160"},  # district-sms's number, signed by test-sms
        {"MessagingServiceSid": service},  # district-sms's service, signed by test-sms
        {"MessagingServiceSid": "MG" + "0" * 32, "To": "+19515550161"},
    ]
    for extra in not_addressed:
        form = inbound_form(test_sid, "STOP", **extra)
        assert signed_post(hook, form, test_token, hook).status_code == 403, extra
    assert opted_out(session_factory) == set()
    # Addressed to the signer: its own service, or one of its sending numbers.
    for n, extra in enumerate(({"MessagingServiceSid": test_service}, {"To": "+19515550160"})):
        phone = f"+1415555011{n}"
        signer, key = (test_sid, test_token) if n == 0 else (sid, token)
        form = inbound_form(signer, "STOP", phone, **extra)
        assert signed_post(hook, form, key, hook).status_code == 200
    assert opted_out(session_factory) == {"+14155550110", "+14155550111"}


def test_a_replayed_inbound_text_is_applied_once(run, web_app, district, session_factory):
    """A parent texts STOP, then START. Replaying the STOP (the same signed request, or several
    copies at once) does not opt them out again; nor does a request keyed only by SmsSid."""
    url = web_app()
    hook = f"{url}/hooks/twilio/inbound"
    sid, service, token = sms_identity(district, "district-sms")
    stop = inbound_form(sid, "STOP", MessagingServiceSid=service)
    start = inbound_form(sid, "START", MessagingServiceSid=service)
    assert "no longer receive" in signed_post(hook, stop, token, hook).text
    assert "receive district alerts again" in signed_post(hook, start, token, hook).text
    assert opted_out(session_factory) == set()
    with ThreadPoolExecutor(4) as pool:
        replies = list(pool.map(lambda _: signed_post(hook, stop, token, hook), range(4)))
    assert {r.status_code for r in replies} == {200}
    assert all("<Message>" not in r.text for r in replies)
    assert opted_out(session_factory) == set()
    # Twilio's older name for the same id counts the same.
    only_sms_sid = {k: v for k, v in stop.items() if k != "MessageSid"}
    assert "<Message>" not in signed_post(hook, only_sms_sid, token, hook).text
    assert opted_out(session_factory) == set()
    # A new STOP is a new text: applied.
    again = inbound_form(sid, "STOP", MessagingServiceSid=service)
    assert signed_post(hook, again, token, hook).status_code == 200
    assert opted_out(session_factory) == {PARENT}
    without_id = {k: v for k, v in again.items() if k not in ("MessageSid", "SmsSid")}
    assert signed_post(hook, without_id, token, hook).status_code == 400
    with session_factory() as session:
        events = session.scalars(
            select(LedgerEntry.event).where(LedgerEntry.event.like("contact.opted_%"))
        ).all()
        assert events == ["contact.opted_out", "contact.opted_in", "contact.opted_out"]
        assert session.scalar(select(func.count()).select_from(InboundText)) == 3


def test_a_delivered_text_never_goes_back(
    stack, run, tokens, web_app, tmp_path, session_factory, compose_closure, district
):
    """The sandbox delivers a text and reports it; later reports (signed by the same account, in
    any of Twilio's earlier or final states) change nothing, so `retry` has nothing to send again
    and the parent is texted once."""
    url = web_app()
    run.env["BROADCASTER_PUBLIC_URL"] = url
    admin = run.json("users", "add", "it")["token"]
    csv = tmp_path / "c.csv"
    csv.write_text(f"phone,language\n{PARENT},en\n", encoding="utf-8")
    run.json("contacts", "import", str(csv), "--as", "it", token=admin)
    draft = compose_closure("--channels", "sms")
    submit_and_approve(run, tokens, draft)
    stack.start_worker()
    stack.wait_done(draft["id"])
    stack.wait_for(lambda: set(statuses(session_factory).values()) == {"delivered"})
    [provider_id] = statuses(session_factory)
    sid, _, token = sms_identity(district, "district-sms")
    status = f"{url}/hooks/twilio/status"
    for late in ("failed", "undelivered", "sent", "sending", "queued"):
        form = {"AccountSid": sid, "MessageSid": provider_id, "MessageStatus": late}
        assert signed_post(status, form, token, status).status_code == 204
        assert statuses(session_factory) == {provider_id: "delivered"}, late
    result = run("retry", str(draft["id"]), "--as", "ben", token=tokens["ben"])
    assert result.exit_code == 2 and "no failed deliveries" in result.stderr
    assert len(stack.sandbox.posts("twilio")) == 1
