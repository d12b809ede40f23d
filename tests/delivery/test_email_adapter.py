"""The e-mail adapter (channel_adapters/email.py): smtplib against the sandbox's real SMTP server
over loopback, found through the sandbox URL as the broadcaster would, and, as a configured host
and port with the server's certificate as the trusted authority, the way a real server is used."""

from __future__ import annotations

import base64
import json
import socket
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

import dkim
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from channel_adapters import AccountConfig, DeliveryError, Outcome, Receipt, adapter_for, build
from channel_adapters.email import EmailAdapter, check_address
from provider_sandbox import Sandbox
from provider_sandbox.smtp_api import SmtpApi

USER = "district-mailer"
PASSWORD = "smtp-pass-s3cr3t"
FROM = "alerts@district.example"
PARENT = "parent@example.org"
REFUSED = {
    "gone@example.org": (550, "5.1.1 <gone@example.org>: Recipient address rejected"),
    "busy@example.org": (450, "4.2.1 Mailbox busy, try later"),
}
BILINGUAL = (
    "Subject: Schools closed today / Escuelas cerradas hoy\n\n"
    "All district schools are closed today because of snow.\n"
    "Buses do not run.\n\n"
    "Todas las escuelas del distrito están cerradas hoy por la nieve.\n"
    "Los autobuses no circulan."
)


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    with Sandbox(
        smtp_credentials={USER: PASSWORD},
        smtp_refused_recipients=REFUSED,
        smtp_max_message_bytes=200_000,
    ) as sb:
        yield sb


def account(
    sandbox: Sandbox | None = None, settings: dict[str, str] | None = None, **changes: Any
) -> AccountConfig:
    credentials = {"username": USER, "password": PASSWORD, **changes.pop("credentials", {})}
    return AccountConfig(
        name="district-email",
        channel="email",
        settings={"from_address": FROM, "from_name": "Springfield Schools", **(settings or {})},
        credentials={k: v for k, v in credentials.items() if v is not None},
        sandbox_url=sandbox.url if sandbox else None,
        timeout_s=changes.pop("timeout_s", 5.0),
    )


def adapter(sandbox: Sandbox | None = None, **kw: Any) -> EmailAdapter:
    made = build(account(sandbox, **kw))
    assert isinstance(made, EmailAdapter)
    return made


def raw_of(sandbox: Sandbox, receipt: Receipt) -> bytes:
    raw = sandbox.smtp_raw(receipt.provider_id)
    assert raw is not None
    return raw


def header_lines(raw: bytes) -> list[bytes]:
    """The raw header lines, folded lines joined."""
    head = raw.split(b"\r\n\r\n", 1)[0]
    return head.replace(b"\r\n ", b" ").replace(b"\r\n\t", b" ").split(b"\r\n")


def send_error(mailer: EmailAdapter, text: str = "Hello", **kw: Any) -> DeliveryError:
    kw.setdefault("to", PARENT)
    with pytest.raises(DeliveryError) as e:
        mailer.send(text, **kw)
    return e.value


# -- the message ---------------------------------------------------------------------------------


def test_registered_as_the_email_channel() -> None:
    assert adapter_for("email") is EmailAdapter


def test_a_bilingual_message_arrives_multipart_with_both_parts(sandbox: Sandbox) -> None:
    receipt = adapter(sandbox).send(BILINGUAL, to=PARENT)
    [kept] = sandbox.posts("email")
    assert receipt.provider_id == kept["message_id"]
    assert receipt.provider_id.endswith("@district.example>")
    assert kept["content_type"] == "multipart/alternative"
    assert kept["subject"] == "Schools closed today / Escuelas cerradas hoy"
    assert kept["from"] == f"Springfield Schools <{FROM}>"
    assert (kept["to"], kept["rcpt_tos"], kept["mail_from"]) == (PARENT, [PARENT], FROM)
    text = kept["text"].replace("\r\n", "\n")
    assert "closed today because of snow.\nBuses do not run." in text
    assert "están cerradas hoy por la nieve.\nLos autobuses no circulan." in text
    assert "Subject:" not in text
    assert "están cerradas hoy por la nieve.<br>" in kept["html"]
    assert '<p dir="auto">All district schools' in kept["html"]
    # STARTTLS and AUTH were used; the log names the message by its Message-ID.
    assert (kept["tls"], kept["auth_user"]) == (True, USER)
    [entry] = sandbox.requests("email")
    assert (entry["status"], entry["resource_id"]) == (250, receipt.provider_id)
    assert PASSWORD not in json.dumps(sandbox.requests())
    raw = raw_of(sandbox, receipt)
    assert max(raw) < 128  # quoted-printable and RFC 2047: 7-bit on the wire
    assert b"Auto-Submitted: auto-generated" in raw


def test_the_sandbox_is_reached_by_the_host_of_its_url(sandbox: Sandbox) -> None:
    # The certificate names the loopback addresses; the sandbox URL's host is what counts.
    by_name = AccountConfig(
        name="district-email",
        channel="email",
        settings={"from_address": FROM, "host": "mail.district.example"},
        credentials={"username": USER, "password": PASSWORD},
        sandbox_url=sandbox.url.replace("127.0.0.1", "localhost"),
        timeout_s=5.0,
    )
    receipt = build(by_name).send("Hello", to=PARENT)
    assert sandbox.posts("email")[0]["message_id"] == receipt.provider_id


def test_the_html_part_escapes_the_text(sandbox: Sandbox) -> None:
    text = 'Test <script>alert("x")</script> & <b>bold</b>\n\n<img src=x onerror=alert(1)>'
    adapter(sandbox).send(text, to=PARENT, subject="Escaping")
    [kept] = sandbox.posts("email")
    html = kept["html"]
    assert "<script" not in html and "<img" not in html and "<b>" not in html
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &lt;b&gt;bold&lt;/b&gt;" in html
    assert kept["text"].replace("\r\n", "\n").rstrip("\n") == text  # the plain part as given


def test_a_given_html_part_is_used_as_it_is(sandbox: Sandbox) -> None:
    adapter(sandbox).send("Plain", to=PARENT, subject="S", html="<p><a href='https://x'>x</a></p>")
    assert sandbox.posts("email")[0]["html"].strip() == "<p><a href='https://x'>x</a></p>"


@pytest.mark.parametrize(
    "subject",
    ["Cierre de escuelas 🚨 hoy", "בית הספר סגור היום", "Schule geschlossen — ÄÖÜß " * 4],
)
def test_unicode_subjects_are_encoded_per_rfc_2047(sandbox: Sandbox, subject: str) -> None:
    receipt = adapter(sandbox).send("Body", to=PARENT, subject=subject)
    raw = raw_of(sandbox, receipt)
    [line] = [x for x in header_lines(raw) if x.startswith(b"Subject:")]
    assert line.isascii() and b"=?utf-8?" in line
    assert sandbox.posts("email")[0]["subject"] == subject.strip()
    assert message_from_bytes(raw, policy=policy.default)["Subject"] == subject.strip()


def test_subject_comes_from_the_keyword_the_subject_line_or_the_first_line(
    sandbox: Sandbox,
) -> None:
    mailer = adapter(sandbox)
    mailer.send("Subject: From the line\n\nBody", to=PARENT)
    mailer.send("Subject: From the line\n\nBody", to=PARENT, subject="From the keyword")
    mailer.send("First line only\nsecond line", to=PARENT)
    subjects = [p["subject"] for p in sandbox.posts("email")]
    assert subjects == ["From the line", "From the keyword", "First line only"]


def test_list_unsubscribe_only_on_routine_messages(sandbox: Sandbox) -> None:
    unsubscribe = (
        "https://district.example/unsubscribe?who={recipient}, mailto:unsub@district.example"
    )
    mailer = adapter(sandbox, settings={"list_unsubscribe": unsubscribe})
    mailer.send("Lunch menu", to=PARENT, routine=True)
    mailer.send("Lockdown at Lincoln High", to=PARENT)  # an emergency: the default
    routine, emergency = sandbox.posts("email")
    assert routine["list_unsubscribe"] == (
        "<https://district.example/unsubscribe?who=parent%40example.org>, "
        "<mailto:unsub@district.example>"
    )
    assert routine["list_unsubscribe_post"] == "List-Unsubscribe=One-Click"
    assert emergency["list_unsubscribe"] is None and emergency["list_unsubscribe_post"] is None
    # A mailto: alone offers no one-click POST (RFC 8058 needs an https URI).
    mailto_only = adapter(sandbox, settings={"list_unsubscribe": "mailto:unsub@district.example"})
    mailto_only.send("Newsletter", to=PARENT, routine=True)
    assert sandbox.posts("email")[2]["list_unsubscribe_post"] is None
    # Without the setting there is nothing to offer, routine or not.
    adapter(sandbox).send("Newsletter", to=PARENT, routine=True)
    assert sandbox.posts("email")[3]["list_unsubscribe"] is None


def test_list_unsubscribe_takes_only_https_and_mailto() -> None:
    for bad in ("http://district.example/u", "javascript:alert(1)", "https://x/<a>"):
        with pytest.raises(ValueError, match="list_unsubscribe"):
            EmailAdapter(account(settings={"host": "127.0.0.1", "list_unsubscribe": bad}))


def rsa_key() -> tuple[str, bytes]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    ).decode()
    public = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private, public


def test_dkim_signature_verifies_against_the_public_key(sandbox: Sandbox) -> None:
    private, public = rsa_key()
    record = b"v=DKIM1; k=rsa; p=" + base64.b64encode(public)
    asked: list[bytes] = []

    def dns(name: bytes, timeout: int = 5) -> bytes:
        asked.append(name)
        return record

    mailer = adapter(
        sandbox,
        settings={"dkim_selector": "s2026", "list_unsubscribe": "https://district.example/u"},
        credentials={"dkim_private_key": private},
    )
    receipt = mailer.send(BILINGUAL, to=PARENT, routine=True)
    [kept] = sandbox.posts("email")
    assert kept["dkim_signature"] is True
    raw = raw_of(sandbox, receipt)
    assert dkim.verify(raw, dnsfunc=dns)
    assert asked == [b"s2026._domainkey.district.example."]
    [signature] = [x for x in header_lines(raw) if x.startswith(b"DKIM-Signature:")]
    signed = signature.split(b"h=", 1)[1].split(b";", 1)[0].replace(b" ", b"").lower().split(b":")
    assert {b"from", b"subject", b"list-unsubscribe", b"list-unsubscribe-post"} <= set(signed)
    # Any change to a signed header or the body breaks it.
    assert not dkim.verify(raw.replace(b"Buses do not run", b"Buses do run"), dnsfunc=dns)
    assert not dkim.verify(raw.replace(b"List-Unsubscribe-Post", b"X-Other"), dnsfunc=dns)
    # Without a key nothing is signed.
    adapter(sandbox).send("Unsigned", to=PARENT)
    assert sandbox.posts("email")[1]["dkim_signature"] is False


def test_a_bad_dkim_key_fails_without_showing_it(sandbox: Sandbox) -> None:
    bad_key = (
        "-----BEGIN RSA PRIVATE KEY-----\nbm90LWEta2V5LXMzY3IzdA==\n-----END RSA PRIVATE KEY-----"
    )
    mailer = adapter(
        sandbox, settings={"dkim_selector": "s1"}, credentials={"dkim_private_key": bad_key}
    )
    error = send_error(mailer)
    assert error.outcome is Outcome.PERMANENT and "DKIM" in error.detail
    assert "bm90LWEta2V5" not in error.detail + repr(error.raw)
    assert sandbox.requests("email") == []


def test_message_id_reply_to_and_validity(sandbox: Sandbox) -> None:
    mailer = adapter(sandbox)
    first = mailer.send("Closed", to=PARENT, message_id="<delivery-42@district.example>")
    assert first.provider_id == "<delivery-42@district.example>"
    second = mailer.send("Correction: open", to=PARENT, reply_to=first.provider_id, valid_for_s=600)
    raw = message_from_bytes(raw_of(sandbox, second), policy=policy.default)
    assert raw["In-Reply-To"] == raw["References"] == "<delivery-42@district.example>"
    assert parsedate_to_datetime(raw["Expires"]) > datetime.now(UTC)
    assert send_error(mailer, message_id="delivery-43").outcome is Outcome.PERMANENT


# -- refusals and faults ------------------------------------------------------------------------


def test_wrong_password_is_permanent_with_the_servers_reply(sandbox: Sandbox) -> None:
    mailer = adapter(sandbox, credentials={"password": "wrong-pass-s3cr3t"})
    error = send_error(mailer)
    assert error.outcome is Outcome.PERMANENT
    assert "535" in error.detail and "5.7.8" in error.detail
    assert error.raw["smtp_code"] == 535 and error.raw["stage"] == "AUTH"
    assert "wrong-pass-s3cr3t" not in error.detail + repr(error.raw)
    assert sandbox.posts("email") == []


def test_starttls_is_required_by_the_server(sandbox: Sandbox) -> None:
    # No TLS (and so no AUTH): the sandbox, like a submission server, will not take mail.
    mailer = adapter(
        sandbox,
        settings={"starttls": "false"},
        credentials={"username": None, "password": None},
    )
    error = send_error(mailer)
    assert error.outcome is Outcome.PERMANENT
    assert error.raw["smtp_code"] == 530 and error.raw["stage"] == "MAIL"
    with pytest.raises(ValueError, match="starttls"):
        adapter(sandbox, settings={"starttls": "false"})  # a password never goes out in clear


@pytest.mark.parametrize(
    ("to", "outcome", "code"),
    [("gone@example.org", Outcome.PERMANENT, 550), ("busy@example.org", Outcome.RETRYABLE, 450)],
)
def test_refused_recipients(sandbox: Sandbox, to: str, outcome: Outcome, code: int) -> None:
    error = send_error(adapter(sandbox), to=to)
    assert error.outcome is outcome
    assert f"RCPT refused: {code} " in error.detail and REFUSED[to][1] in error.detail
    assert error.raw == {"smtp_code": code, "smtp_reply": REFUSED[to][1], "stage": "RCPT"}


@pytest.mark.parametrize(
    ("rule", "outcome", "code"),
    [
        ({"fault": "status", "status": 451}, Outcome.RETRYABLE, 451),
        ({"fault": "status", "status": 554, "message": "5.7.1 Rejected"}, Outcome.PERMANENT, 554),
        ({"fault": "rate_limit"}, Outcome.RETRYABLE, 421),
        ({"fault": "rate_limit", "code": 452}, Outcome.RETRYABLE, 452),
    ],
)
def test_replies_to_data(
    sandbox: Sandbox, rule: dict[str, Any], outcome: Outcome, code: int
) -> None:
    mailer = adapter(sandbox)
    sandbox.set_faults([{"provider": "email", "count": 1, **rule}])
    error = send_error(mailer)
    assert (error.outcome, error.raw["smtp_code"], error.raw["stage"]) == (outcome, code, "DATA")
    assert sandbox.posts("email") == []
    # The next send (on a new connection where the server closed it) goes through.
    receipt = mailer.send("Again", to=PARENT)
    assert [p["message_id"] for p in sandbox.posts("email")] == [receipt.provider_id]


def test_a_drop_after_data_is_ambiguous_and_lookup_finds_nothing(sandbox: Sandbox) -> None:
    mailer = adapter(sandbox)
    since = datetime.now(UTC) - timedelta(seconds=1)
    sandbox.set_faults([{"provider": "email", "fault": "drop", "count": 1}])
    error = send_error(mailer, "Closed today")
    assert error.outcome is Outcome.AMBIGUOUS
    assert mailer.lookup("Closed today", to=PARENT, since=since) is None
    receipt = mailer.send("Closed today", to=PARENT)  # the resend
    found = mailer.lookup("Closed today", to=PARENT, since=since)
    assert found is not None and found.provider_id == receipt.provider_id


def test_a_timeout_after_the_data_is_ambiguous_and_lookup_finds_it(sandbox: Sandbox) -> None:
    mailer = adapter(sandbox, timeout_s=0.5)
    since = datetime.now(UTC) - timedelta(seconds=1)
    sandbox.set_faults([{"provider": "email", "fault": "timeout_after_accept", "count": 1}])
    error = send_error(mailer, BILINGUAL)
    assert error.outcome is Outcome.AMBIGUOUS and "look it up" in error.detail
    found = mailer.lookup(BILINGUAL, to=PARENT, since=since)
    [kept] = sandbox.posts("email")
    assert found is not None and found.provider_id == kept["message_id"]
    # Not for another recipient, another text, or from before it was kept.
    assert mailer.lookup(BILINGUAL, to="other@example.org", since=since) is None
    assert mailer.lookup("Something else", to=PARENT, since=since) is None
    later = datetime.now(UTC) + timedelta(seconds=5)
    assert mailer.lookup(BILINGUAL, to=PARENT, since=later) is None


def test_nothing_listening_is_retryable() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, never listening: connections are refused
        mailer = adapter(settings={"host": "127.0.0.1", "port": str(port)})
        error = send_error(mailer)
    assert error.outcome is Outcome.RETRYABLE and "ConnectionRefusedError" in error.detail


def test_retract_is_refused() -> None:
    mailer = adapter(settings={"host": "127.0.0.1"})
    with pytest.raises(DeliveryError) as e:
        mailer.retract(Receipt("<x@district.example>"))
    assert e.value.outcome is Outcome.PERMANENT and "cannot be retracted" in e.value.detail


# -- a configured server (not the sandbox) --------------------------------------------------------


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[SmtpApi, dict[str, str]]]:
    with SmtpApi(credentials={USER: PASSWORD}) as api:
        ca = tmp_path / "ca.pem"
        ca.write_text(api.cert_pem or "")
        yield api, {"host": "127.0.0.1", "port": str(api.port), "tls_ca_file": str(ca)}


def test_a_configured_server_with_its_own_authority(server: tuple[SmtpApi, dict]) -> None:
    api, settings = server
    mailer = adapter(settings=settings)
    since = datetime.now(UTC) - timedelta(seconds=1)
    receipt = mailer.send(BILINGUAL, to=PARENT)
    assert api.posts()[0]["message_id"] == receipt.provider_id
    # A real server cannot be asked whether it took a message: None, send again.
    assert mailer.lookup(BILINGUAL, to=PARENT, since=since) is None


def test_an_untrusted_certificate_is_permanent(server: tuple[SmtpApi, dict]) -> None:
    api, settings = server
    mailer = adapter(settings={**settings, "tls_ca_file": ""})  # the system's roots only
    error = send_error(mailer)
    assert error.outcome is Outcome.PERMANENT and "certificate" in error.detail
    assert api.count() == 0


def test_one_connection_reused_and_made_again_when_the_server_closed_it(
    server: tuple[SmtpApi, dict],
) -> None:
    api, settings = server
    mailer = adapter(settings=settings)
    mailer.send("One", to=PARENT)
    mailer.send("Two", to=PARENT)
    port = api.port
    api.stop()  # the server goes away and comes back on the same port: the connection is stale
    with SmtpApi(port=port, credentials={USER: PASSWORD}) as again:
        Path(settings["tls_ca_file"]).write_text(again.cert_pem or "")
        mailer.send("Three", to=PARENT)
        assert [p["subject"] for p in again.posts()] == ["Three"]
        assert [e["path"] for e in again.requests()] == ["DATA"]
    # The first two went over one connection.
    first, second = api.posts()
    assert first["peer"] == second["peer"] and first["peer"] is not None
    mailer.close()


# -- attacker-style input --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [
        {"subject": "Closed\r\nBcc: everyone@example.org"},
        {"subject": "Closed\nX-Injected: yes"},
        {"subject": "Closed\u2028Bcc: everyone@example.org"},
        {"subject": "Closed\x85Bcc: everyone@example.org"},
        {"to": "parent@example.org\r\nBcc: everyone@example.org"},
        {"to": "parent@example.org>\r\nRCPT TO:<everyone@example.org"},
        {"reply_to": "<a@district.example>\r\nBcc: everyone@example.org"},
    ],
)
def test_header_injection_is_refused(sandbox: Sandbox, kwargs: dict[str, str]) -> None:
    error = send_error(adapter(sandbox), **kwargs)
    assert error.outcome is Outcome.PERMANENT
    assert sandbox.requests() == []


def test_a_subject_line_cannot_smuggle_a_header(sandbox: Sandbox) -> None:
    error = send_error(adapter(sandbox), "Subject: Closed\rBcc: everyone@example.org\n\nBody")
    assert error.outcome is Outcome.PERMANENT
    # A line after the subject line is body, never a header.
    receipt = adapter(sandbox).send("Subject: Closed\n\nBcc: everyone@example.org", to=PARENT)
    raw = raw_of(sandbox, receipt)
    assert not any(x.lower().startswith(b"bcc:") for x in header_lines(raw))
    assert sandbox.posts("email")[0]["rcpt_tos"] == [PARENT]


def test_a_display_name_with_a_line_break_is_refused() -> None:
    with pytest.raises(ValueError, match="from_name"):
        EmailAdapter(account(settings={"host": "h", "from_name": "Schools\r\nBcc: x@y.org"}))


@pytest.mark.parametrize(
    "address",
    [
        "",
        "no-at-sign",
        "a@b",
        "a@@b.org",
        "a b@example.org",
        '"quoted"@example.org',
        "Name <a@example.org>",
        "a@example.org, b@example.org",
        "a@-bad-.org",
        ".a@example.org",
        "a..b@example.org",
        "ñ@example.org",
        "a@exa mple.org",
        "x" * 65 + "@example.org",
        "a@" + "b" * 64 + ".org",
    ],
)
def test_malformed_addresses_are_refused_before_sending(sandbox: Sandbox, address: str) -> None:
    error = send_error(adapter(sandbox), to=address)
    assert error.outcome is Outcome.PERMANENT
    assert "is not a valid address" in error.detail or "invalid domain" in error.detail
    assert sandbox.requests() == []


def test_an_internationalized_domain_is_sent_in_its_ascii_form(sandbox: Sandbox) -> None:
    assert check_address("padre@escuela.méxico", "to") == "padre@escuela.xn--mxico-bsa"
    adapter(sandbox).send("Hola", to="padre@escuela.méxico")
    assert sandbox.posts("email")[0]["rcpt_tos"] == ["padre@escuela.xn--mxico-bsa"]


def test_a_huge_body_is_refused_before_connecting_or_by_the_server(sandbox: Sandbox) -> None:
    huge = "Closed. " * 40_000  # 320 KB
    small = adapter(sandbox, settings={"max_bytes": "100000"})
    error = send_error(small, huge)
    assert error.outcome is Outcome.PERMANENT and "max_bytes 100000" in error.detail
    assert sandbox.requests() == []
    # Within the adapter's limit but over the server's (200 KB here): the server's 552.
    error = send_error(adapter(sandbox), huge)
    assert error.outcome is Outcome.PERMANENT and error.raw["smtp_code"] == 552
    assert sandbox.posts("email") == []


def test_a_bad_from_address_is_refused_at_construction() -> None:
    for bad in ("", "alerts", "alerts@district.example\r\nBcc: x@y.org"):
        with pytest.raises(ValueError, match="from_address"):
            EmailAdapter(account(settings={"host": "h", "from_address": bad}))
