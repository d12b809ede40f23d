"""The sandbox's SMTP server (provider_sandbox/smtp_api.py), with the standard library's smtplib
as the client over loopback: STARTTLS, AUTH, what it keeps, the request log and the faults; then
the same server inside the Sandbox (its log, its rules, its control endpoints)."""

from __future__ import annotations

import json
import os
import smtplib
import ssl
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest

from channel_adapters import AccountConfig, build
from provider_sandbox import FaultRule, RemoteSandbox, Sandbox
from provider_sandbox.smtp_api import SmtpApi

USER = "district-mailer"
PASSWORD = "smtp-pass-s3cr3t"
TIMEOUT = 10
REFUSED = {
    "gone@example.org": (550, "5.1.1 <gone@example.org>: Recipient address rejected"),
    "busy@example.org": (450, "4.2.1 Mailbox busy, try later"),
}


@pytest.fixture
def api() -> Iterator[SmtpApi]:
    with SmtpApi(credentials={USER: PASSWORD}, refused_recipients=REFUSED) as server:
        yield server


def connect(api: SmtpApi, *, tls: bool = True, login: bool = True, timeout: float = TIMEOUT):
    client = smtplib.SMTP("127.0.0.1", api.port, "client.example", timeout=timeout)
    client.ehlo()
    if tls:
        client.starttls(context=ssl.create_default_context(cadata=api.cert_pem))
        client.ehlo()
    if login:
        client.login(USER, PASSWORD)
    return client


def message(subject: str = "Schools closed", to: str = "parent@example.org") -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = "alerts@district.example"
    msg["To"] = to
    msg["Subject"] = subject
    msg["Message-ID"] = "<closure-1@district.example>"
    msg.set_content("Schools are closed today.\nLas escuelas están cerradas hoy.")
    msg.add_alternative("<p>Schools are closed today.</p>", subtype="html")
    return msg


def test_keeps_a_message_with_its_envelope_headers_and_parts(api: SmtpApi) -> None:
    with connect(api) as client:
        refused = client.send_message(message("Escuelas cerradas 🚨 שלום"))
    assert refused == {}
    assert api.count() == 1
    [kept] = api.posts()
    assert kept["mail_from"] == "alerts@district.example"
    assert kept["rcpt_tos"] == ["parent@example.org"]
    assert kept["subject"] == "Escuelas cerradas 🚨 שלום"
    assert kept["message_id"] == "<closure-1@district.example>"
    assert kept["text"].replace("\r\n", "\n") == (
        "Schools are closed today.\nLas escuelas están cerradas hoy.\n"
    )
    assert kept["html"].strip() == "<p>Schools are closed today.</p>"
    assert kept["content_type"] == "multipart/alternative"
    assert kept["tls"] is True
    assert kept["auth_user"] == USER
    assert kept["dkim_signature"] is False
    assert kept["list_unsubscribe"] is None
    raw = api.raw("<closure-1@district.example>")
    assert raw is not None and b"Message-ID: <closure-1@district.example>" in raw
    assert api.messages(to="PARENT@example.org") == [kept]  # addresses match case-insensitively
    assert api.messages(to="someone@example.org") == []
    [entry] = api.requests()
    assert entry["provider"] == "email"
    assert (entry["method"], entry["path"], entry["status"]) == ("SMTP", "DATA", 250)
    assert entry["resource_id"] == "<closure-1@district.example>"
    assert entry["body"]["rcpt_tos"] == ["parent@example.org"]
    assert entry["body"]["subject"] == "Escuelas cerradas 🚨 שלום"


def test_auth_is_offered_only_after_starttls(api: SmtpApi) -> None:
    with connect(api, tls=False, login=False) as client:
        assert client.has_extn("starttls")
        assert not client.has_extn("auth")
        code, reply = client.docmd("AUTH", "PLAIN AGRpc3RyaWN0LW1haWxlcgBwdw==")
        assert (code, reply) == (530, b"Must issue a STARTTLS command first")
        code, _ = client.mail("alerts@district.example")
        assert code == 530
    assert api.count() == 0


def test_auth_needs_tls_even_where_tls_is_optional() -> None:
    with SmtpApi(require_tls=False) as lax, connect(lax, tls=False, login=False) as client:
        code, reply = client.docmd("AUTH", "PLAIN AGRpc3RyaWN0LW1haWxlcgBwdw==")
        assert code == 538, reply  # encryption required for the mechanism
        code, reply = client.mail("alerts@district.example")
        assert code == 530 and b"Authentication required" in reply


def test_no_mail_without_auth(api: SmtpApi) -> None:
    with connect(api, login=False) as client:
        assert client.has_extn("auth")
        code, reply = client.mail("alerts@district.example")
    assert code == 530 and b"Authentication required" in reply


def test_wrong_password_is_refused_and_logged_without_it(api: SmtpApi) -> None:
    with connect(api, login=False) as client, pytest.raises(smtplib.SMTPAuthenticationError) as e:
        client.login(USER, "not-the-password")
    assert e.value.smtp_code == 535
    entries = api.requests()
    assert entries and {(x["path"], x["status"]) for x in entries} == {("AUTH", 535)}
    assert entries[0]["body"]["username"] == USER
    assert "not-the-password" not in json.dumps(entries)
    # The right password still works, and it never reaches the log either.
    with connect(api) as client:
        client.send_message(message())
    assert PASSWORD not in json.dumps(api.requests()) + json.dumps(api.posts())


def test_without_a_credentials_map_any_non_empty_pair_is_accepted() -> None:
    with SmtpApi() as open_api:
        client = smtplib.SMTP("127.0.0.1", open_api.port, "client.example", timeout=TIMEOUT)
        client.starttls(context=ssl.create_default_context(cadata=open_api.cert_pem))
        client.login("anyone", "anything")
        client.send_message(message())
        client.quit()
        assert open_api.posts()[0]["auth_user"] == "anyone"


def test_the_certificate_verifies_for_the_loopback_address(api: SmtpApi) -> None:
    # A client that trusts only the system's roots refuses it: it is the sandbox's own.
    client = smtplib.SMTP("127.0.0.1", api.port, "client.example", timeout=TIMEOUT)
    with pytest.raises(ssl.SSLCertVerificationError):
        client.starttls(context=ssl.create_default_context())
    client.close()


@pytest.mark.parametrize(
    ("address", "code"), [("gone@example.org", 550), ("busy@example.org", 450)]
)
def test_a_refused_recipient_is_answered_at_rcpt(api: SmtpApi, address: str, code: int) -> None:
    with connect(api) as client, pytest.raises(smtplib.SMTPRecipientsRefused) as e:
        client.send_message(message(to=address))
    assert e.value.recipients[address][0] == code
    assert api.count() == 0
    [entry] = api.requests()
    assert (entry["path"], entry["status"]) == ("RCPT", code)
    assert entry["body"]["rcpt_to"] == address


@pytest.mark.parametrize(
    ("rule", "code", "text"),
    [
        ({"fault": "status", "status": 451}, 451, b"4.3.0"),
        ({"fault": "status", "status": 550, "message": "5.7.1 Spam"}, 550, b"5.7.1 Spam"),
        ({"fault": "rate_limit", "code": 452}, 452, b"try again in 60 s"),
    ],
)
def test_status_faults_answer_data_and_keep_nothing(
    api: SmtpApi, rule: dict[str, Any], code: int, text: bytes
) -> None:
    api.set_faults([{"provider": "email", "count": 1, **rule}])
    with connect(api) as client:
        with pytest.raises(smtplib.SMTPDataError) as e:
            client.send_message(message())
        assert (e.value.smtp_code, text in e.value.smtp_error) == (code, True)
        client.send_message(message())  # the rule is spent and the connection still open
    assert api.count() == 1
    entries = api.requests()
    assert [(x["status"], x["fault"]) for x in entries] == [(code, rule["fault"]), (250, None)]
    assert entries[0]["resource_id"] is None


def test_rate_limit_answers_421_and_closes_the_connection(api: SmtpApi) -> None:
    api.set_faults([{"provider": "email", "fault": "rate_limit", "retry_after_s": 30}])
    with connect(api) as client:
        with pytest.raises(smtplib.SMTPDataError) as e:
            client.send_message(message())
        assert e.value.smtp_code == 421 and b"30 s" in e.value.smtp_error
        with pytest.raises(smtplib.SMTPServerDisconnected):
            client.noop()
    assert api.count() == 0


def test_a_fault_message_cannot_add_a_line_to_the_reply(api: SmtpApi) -> None:
    api.set_faults(
        [{"provider": "email", "fault": "status", "status": 554, "message": "no\r\n250 OK"}]
    )
    with connect(api) as client:
        with pytest.raises(smtplib.SMTPDataError) as e:
            client.send_message(message())
        assert e.value.smtp_error == b"no 250 OK"
        assert client.noop()[0] == 250  # the stream is still in step


def test_drop_closes_the_connection_without_an_answer(api: SmtpApi) -> None:
    api.set_faults([{"provider": "email", "fault": "drop", "count": 1}])
    with pytest.raises(smtplib.SMTPServerDisconnected):
        connect(api).send_message(message())
    assert api.count() == 0
    [entry] = api.requests()
    assert (entry["status"], entry["fault"]) == (None, "drop")


def test_timeout_after_accept_keeps_the_message_and_holds_the_reply(api: SmtpApi) -> None:
    api.set_faults([{"provider": "email", "fault": "timeout_after_accept", "hold_ms": 30_000}])
    client = connect(api, timeout=0.5)
    with pytest.raises(smtplib.SMTPServerDisconnected, match="timed out"):
        client.send_message(message())
    client.close()
    assert api.count() == 1  # kept, although the client never heard so
    [entry] = api.requests()
    assert (entry["status"], entry["fault"]) == (250, "timeout_after_accept")
    assert entry["resource_id"] == "<closure-1@district.example>"
    # Stopping does not wait for the held reply.
    stopper = threading.Thread(target=api.stop)
    stopper.start()
    stopper.join(10)
    assert not stopper.is_alive()


def test_latency_is_recorded_and_the_message_kept(api: SmtpApi) -> None:
    api.set_faults([{"provider": "email", "fault": "latency", "latency_ms": 20}])
    with connect(api) as client:
        client.send_message(message())
    assert api.count() == 1
    assert api.requests()[0]["latency_ms"] == 20


def test_oversized_messages_are_refused_with_552() -> None:
    with SmtpApi(max_message_bytes=5_000) as small:
        big = EmailMessage()
        big["From"], big["To"], big["Subject"] = "a@district.example", "b@example.org", "Big"
        big.set_content("x" * 10_000)
        with connect(small) as client, pytest.raises(smtplib.SMTPSenderRefused) as e:
            client.send_message(big)  # smtplib declares SIZE=...; the server refuses at MAIL
        assert e.value.smtp_code == 552
        # A client that does not declare the size is refused after the data.
        with connect(small) as client:
            client.esmtp_features.pop("size", None)
            with pytest.raises(smtplib.SMTPDataError) as data_error:
                client.send_message(big)
        assert data_error.value.smtp_code == 552
        assert small.count() == 0


def test_a_malformed_message_is_kept_unparsed(api: SmtpApi) -> None:
    with connect(api) as client:
        client.sendmail(
            "a@district.example", ["parent@example.org"], b"\xff\xfe not a header\r\n\r\n\x00"
        )
    [kept] = api.posts()
    assert kept["subject"] is None and kept["message_id"].endswith("@sandbox.smtp.invalid>")


def test_reset_forgets_messages_log_and_rules(api: SmtpApi) -> None:
    api.set_faults([{"provider": "email", "fault": "latency", "latency_ms": 1}])
    with connect(api) as client:
        client.send_message(message())
    api.reset()
    assert (api.count(), api.posts(), api.requests()) == (0, [], [])
    with connect(api) as client:
        client.send_message(message())
    assert "latency_ms" not in api.requests()[0]


def test_email_is_a_fault_provider() -> None:
    assert FaultRule.parse({"provider": "email", "fault": "drop"}).provider == "email"


# -- inside the Sandbox ------------------------------------------------------------------------


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    with Sandbox(smtp_credentials={USER: PASSWORD}, smtp_refused_recipients=REFUSED) as sb:
        yield sb


def get_json(url: str) -> Any:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(url, timeout=TIMEOUT) as response:
        return json.loads(response.read())


def test_the_sandbox_serves_smtp_and_says_where(sandbox: Sandbox) -> None:
    where = get_json(f"{sandbox.url}/_sandbox/smtp")
    assert where == sandbox.smtp_address() == RemoteSandbox(sandbox.url).smtp_address()
    assert where["host"] == "127.0.0.1" and where["port"] > 0
    client = smtplib.SMTP(where["host"], where["port"], "client.example", timeout=TIMEOUT)
    client.starttls(context=ssl.create_default_context(cadata=where["cert_pem"]))
    client.login(USER, PASSWORD)
    client.send_message(message())
    client.quit()
    [kept] = sandbox.posts("email")
    assert sandbox.post_count("email") == 1
    assert get_json(f"{sandbox.url}/_sandbox/posts?provider=email") == [kept]
    assert get_json(f"{sandbox.url}/_sandbox/posts")["email"] == [kept]
    listed = get_json(f"{sandbox.url}/_sandbox/smtp/messages?to=parent%40example.org")
    assert listed == [kept] == sandbox.smtp_messages("parent@example.org")
    assert get_json(f"{sandbox.url}/_sandbox/smtp/messages?to=x%40example.org") == []
    [entry] = sandbox.requests("email")
    assert entry["resource_id"] == kept["message_id"]
    assert RemoteSandbox(sandbox.url).requests("email") == [entry]


def test_sandbox_rules_and_reset_reach_the_smtp_server(sandbox: Sandbox) -> None:
    where = sandbox.smtp_address()
    # A rule for another provider does not touch e-mail; one for e-mail does.
    RemoteSandbox(sandbox.url).set_faults(
        [
            {"provider": "twilio", "fault": "drop"},
            {"provider": "email", "fault": "status", "status": 451, "count": 1},
        ]
    )
    client = smtplib.SMTP(where["host"], where["port"], "client.example", timeout=TIMEOUT)
    client.starttls(context=ssl.create_default_context(cadata=where["cert_pem"]))
    client.login(USER, PASSWORD)
    with pytest.raises(smtplib.SMTPDataError):
        client.send_message(message())
    client.send_message(message())
    client.quit()
    assert [r["applied"] for r in sandbox.faults()] == [0, 1]
    assert [e["status"] for e in sandbox.requests("email")] == [451, 250]
    sandbox.reset()
    assert sandbox.posts("email") == [] and sandbox.requests() == []


def test_python_m_provider_sandbox_serves_smtp_to_the_adapter() -> None:
    root = Path(__file__).resolve().parents[2]
    process = subprocess.Popen(
        [sys.executable, "-m", "provider_sandbox", "--port", "0", "--smtp-user", "u=p"],
        cwd=root,
        env={**os.environ, "PYTHONPATH": str(root)},
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        url = process.stdout.readline().strip().rsplit(" ", 1)[1]
        assert process.stdout.readline().startswith("SMTP (STARTTLS, AUTH) on 127.0.0.1:")
        mailer = build(
            AccountConfig(
                "mail",
                "email",
                {"from_address": "alerts@district.example"},
                {"username": "u", "password": "p"},
                sandbox_url=url,
            )
        )
        receipt = mailer.send("From another process", to="parent@example.org")
        remote = RemoteSandbox(url)
        assert [m["message_id"] for m in remote.posts("email")] == [receipt.provider_id]
        assert remote.requests("email")[0]["resource_id"] == receipt.provider_id
    finally:
        process.terminate()
        process.wait(10)
    assert process.returncode == 0
