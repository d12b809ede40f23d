"""An SMTP submission server for the e-mail channel, built on aiosmtpd.

It runs in the sandbox's process on a port of its own (aiosmtpd's `Controller`: an asyncio loop in
a thread; loopback and port 0, an ephemeral port, by default) and behaves like a submission
server (port 587): STARTTLS with a throw-away self-signed certificate made at start (the
`cryptography` package; `cert_pem` is it, for a client that wants to verify it), AUTH PLAIN and
LOGIN only after STARTTLS (538 before), and no MAIL before AUTH (530). `credentials` maps user
name -> password; None accepts any non-empty user name and password, as the Twilio API accepts
any non-empty token.

Every message accepted is kept, parsed: the envelope (MAIL FROM, RCPT TO), the headers a test
asks about (Subject decoded from RFC 2047, From, To, Message-ID, List-Unsubscribe,
List-Unsubscribe-Post, whether a DKIM-Signature is present), the text/plain and text/html parts
decoded, the raw bytes (`raw(message_id)`), the time, whether the session was under TLS, the
authenticated user and the client's address and port (`peer`: one per connection). `posts()`
lists them like the HTTP APIs' posts; `messages(to=...)` only those for one recipient (indexed,
for lookups).

Each SMTP transaction is written to the sandbox's request log as provider "email", method
"SMTP" and path "DATA" (a message, accepted or refused), "RCPT" (a refused recipient) or "AUTH"
(refused credentials); `body` holds the envelope, the subject and the Message-ID (the AUTH
password never), `status` the SMTP reply code, `resource_id` the Message-ID of a kept message.

Faults (the sandbox's fault rules with provider "email", matched against method "SMTP" and path
"DATA"), applied when the client ends DATA:
- `status`: answer with that code (e.g. 451, 550, 554) and `message` (default: an enhanced
  status code and a short text), without keeping the message;
- `latency`: wait `latency_ms` before answering;
- `rate_limit`: a temporary refusal, by default `421 4.7.0` and the connection is closed, as a
  throttling server does; `code` picks another (452, 454), which keeps the connection open;
- `drop`: close the connection without answering DATA, nothing kept;
- `timeout_after_accept`: keep the message, then hold the 250 for `hold_ms`.
`refused_recipients` maps an address to the (code, text) its RCPT TO is answered with, like the
Twilio API's delivery failures (DEFAULT_REFUSED when not given).
"""

from __future__ import annotations

import asyncio
import copy
import datetime as dt
import hmac
import ipaddress
import logging
import secrets
import ssl
import tempfile
import threading
from collections.abc import Callable, Mapping
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from .core import FaultRule, FaultSet, Incoming, RequestLog, iso, utcnow

PROVIDER = "email"
SERVER_NAME = "sandbox.smtp.invalid"
DEFAULT_REFUSED: dict[str, tuple[int, str]] = {
    "refused@sandbox.invalid": (550, "5.1.1 Recipient address rejected: User unknown"),
    "full@sandbox.invalid": (452, "4.2.2 Mailbox full, try again later"),
}
DEFAULT_MAX_BYTES = 10_000_000
_DEFAULT_TEXT = {
    421: "4.7.0 Service not available, closing transmission channel",
    450: "4.2.0 Mailbox unavailable",
    451: "4.3.0 Local error in processing",
    452: "4.3.1 Insufficient system storage",
    454: "4.7.0 Temporary authentication failure",
    550: "5.1.1 Mailbox unavailable",
    552: "5.3.4 Message size exceeds fixed limit",
    553: "5.1.3 Mailbox name not allowed",
    554: "5.7.1 Transaction failed",
}

State = Callable[[], tuple[RequestLog, FaultSet]]


class _QuietDeprecation(logging.Filter):
    """aiosmtpd 1.4 warns "Session.login_data is deprecated" on every successful AUTH, from its
    own code; nothing here uses login_data."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "login_data is deprecated" not in record.getMessage()


logging.getLogger("mail.log").addFilter(_QuietDeprecation())


def _one_line(text: str) -> str:
    """A reply text that cannot break the SMTP stream (no CR or LF of its own)."""
    return " ".join(text.split())[:400]


def self_signed() -> tuple[ssl.SSLContext, str]:
    """A server TLS context with a new self-signed certificate for localhost and the loopback
    addresses, and the certificate (PEM)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "provider-sandbox smtp")])
    now = dt.datetime.now(dt.UTC)
    names: list[x509.GeneralName] = [
        x509.DNSName("localhost"),
        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
        x509.IPAddress(ipaddress.ip_address("::1")),
    ]
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    # load_cert_chain reads files only; they live just long enough to be read.
    with tempfile.TemporaryDirectory(prefix="sandbox-smtp-") as folder:
        cert_file, key_file = Path(folder, "cert.pem"), Path(folder, "key.pem")
        cert_file.write_bytes(cert_pem)
        key_file.write_bytes(key_pem)
        key_file.chmod(0o600)
        context.load_cert_chain(cert_file, key_file)
    return context, cert_pem.decode()


class _Controller(Controller):
    """aiosmtpd's threaded controller, able to listen on port 0 (it would check port 0)."""

    def _trigger_server(self) -> None:
        assert self.server is not None  # noqa: S101 (_run set it before calling us)
        self.port = self.server.sockets[0].getsockname()[1]
        super()._trigger_server()


class SmtpApi:
    """The sandbox's SMTP server. Standalone (its own request log and fault rules) unless
    `state` is given: then `state()` returns the sandbox's current log and rules."""

    provider = PROVIDER

    def __init__(
        self,
        lock: threading.RLock | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        credentials: Mapping[str, str] | None = None,
        refused_recipients: Mapping[str, tuple[int, str]] | None = None,
        max_message_bytes: int = DEFAULT_MAX_BYTES,
        require_tls: bool = True,
        state: State | None = None,
    ) -> None:
        self._lock = lock or threading.RLock()
        self.host = host
        self.port = port
        self._credentials = dict(credentials) if credentials is not None else None
        refused = DEFAULT_REFUSED if refused_recipients is None else refused_recipients
        self._refused = {k.lower(): (int(v[0]), _one_line(v[1])) for k, v in refused.items()}
        self.max_message_bytes = max_message_bytes
        self.require_tls = require_tls
        if state is None:
            own_log, own_faults = RequestLog(), FaultSet()
            self._own: tuple[RequestLog, FaultSet] | None = (own_log, own_faults)
            self._state: State = lambda: self._own or (own_log, own_faults)
        else:
            self._own = None
            self._state = state
        self._controller: _Controller | None = None
        self.cert_pem: str | None = None
        self.reset()

    # -- lifecycle ------------------------------------------------------------------------------

    def start(self) -> SmtpApi:
        if self._controller is not None:
            return self
        context, self.cert_pem = self_signed()
        controller = _Controller(
            _Handler(self),
            hostname=self.host,
            port=self.port,
            server_hostname=SERVER_NAME,
            ident="provider-sandbox ESMTP",
            tls_context=context,
            require_starttls=self.require_tls,
            auth_required=True,
            auth_require_tls=True,
            authenticator=self._authenticate,
            data_size_limit=self.max_message_bytes,
        )
        controller.start()
        self.port = controller.port
        self._controller = controller
        return self

    def stop(self) -> None:
        controller, self._controller = self._controller, None
        if controller is not None:
            controller.stop()

    def __enter__(self) -> SmtpApi:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def address(self) -> dict[str, Any]:
        """Where clients connect: host, port, and the certificate STARTTLS presents."""
        return {"host": self.host, "port": self.port, "starttls": True, "cert_pem": self.cert_pem}

    # -- inspection (standalone: the log and rules are this server's own) ----------------------

    def reset(self) -> None:
        with self._lock:
            self._messages: list[dict[str, Any]] = []
            self._raw: dict[str, bytes] = {}
            self._by_rcpt: dict[str, list[int]] = {}
            if self._own is not None:
                self._own = (RequestLog(), FaultSet())

    def count(self) -> int:
        with self._lock:
            return len(self._messages)

    def posts(self) -> list[dict[str, Any]]:
        with self._lock:
            return copy.deepcopy(self._messages)

    def messages(self, to: str | None = None) -> list[dict[str, Any]]:
        """The kept messages (to one recipient, when `to` is given), oldest first."""
        if to is None:
            return self.posts()
        with self._lock:
            return [copy.deepcopy(self._messages[i]) for i in self._by_rcpt.get(to.lower(), ())]

    def raw(self, message_id: str) -> bytes | None:
        """The bytes of a kept message exactly as they arrived (DATA, dot-unstuffed)."""
        with self._lock:
            return self._raw.get(message_id)

    def requests(self) -> list[dict[str, Any]]:
        with self._lock:
            log, _ = self._state()
            return copy.deepcopy([e for e in log.entries if e["provider"] == PROVIDER])

    def set_faults(self, rules: list[Mapping[str, Any]]) -> None:
        with self._lock:
            self._state()[1].replace(list(rules))

    # -- the SMTP conversation (called on the server's event-loop thread) ----------------------

    def _record(self, path: str, body: dict[str, Any], status: int | None) -> dict[str, Any]:
        with self._lock:
            log, _ = self._state()
            entry = log.add(PROVIDER, Incoming("SMTP", path, {}, {}, json=body))
            entry["status"] = status
            return entry

    def _authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        if not isinstance(data, LoginPassword):
            return AuthResult(success=False, handled=False)
        user, password = data.login, data.password
        if self._credentials is None:
            ok = bool(user) and bool(password)
        else:
            expected = self._credentials.get(user.decode("utf-8", "replace"))
            ok = expected is not None and hmac.compare_digest(password, expected.encode())
        if not ok:
            self._record(
                "AUTH",
                {"mechanism": mechanism, "username": user.decode("utf-8", "replace")},
                535,
            )
            return AuthResult(success=False, handled=False)
        return AuthResult(success=True, auth_data=user.decode("utf-8", "replace"))

    def _refusal(self, address: str) -> tuple[int, str] | None:
        return self._refused.get(address.lower())

    async def rcpt(self, session: Session, envelope: Envelope, address: str) -> str:
        refusal = self._refusal(address)
        if refusal is not None:
            code, text = refusal
            body = {"mail_from": envelope.mail_from, "rcpt_to": address}
            self._record("RCPT", body, code)
            return f"{code} {text}"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def data(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = bytes(envelope.original_content or b"")
        parsed = _parse(raw)
        body = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": list(envelope.rcpt_tos),
            "subject": parsed["subject"],
            "message_id": parsed["message_id"],
            "size": len(raw),
            "auth_user": session.auth_data if isinstance(session.auth_data, str) else None,
        }
        with self._lock:
            log, faults = self._state()
            entry = log.add(PROVIDER, Incoming("SMTP", "DATA", {}, {}, json=body))
            latency_ms, rule = faults.pick(PROVIDER, "SMTP", "DATA")
            if latency_ms:
                entry["latency_ms"] = latency_ms
            if rule is not None:
                entry["fault"] = rule.fault
        if latency_ms:
            await asyncio.sleep(latency_ms / 1000)
        if rule is not None and rule.fault == "drop":
            await _hang_up(server)
        if rule is not None and rule.fault in ("status", "rate_limit"):
            code, text = _fault_reply(rule)
            with self._lock:
                entry["status"] = code
            if code == 421:
                await _hang_up(server, f"{code} {text}")
            return f"{code} {text}"
        queue_id = secrets.token_hex(6).upper()
        kept = {
            **parsed,
            "queue_id": queue_id,
            "mail_from": envelope.mail_from,
            "rcpt_tos": list(envelope.rcpt_tos),
            "auth_user": body["auth_user"],
            "tls": session.ssl is not None,
            "peer": ":".join(str(x) for x in session.peer[:2]) if session.peer else None,
            "size": len(raw),
            "time": iso(utcnow()),
            "raw": raw.decode("utf-8", "replace"),
        }
        message_id = parsed["message_id"] or f"<{queue_id}@{SERVER_NAME}>"
        kept["message_id"] = message_id
        with self._lock:
            self._messages.append(kept)
            self._raw[message_id] = raw
            for rcpt in envelope.rcpt_tos:
                self._by_rcpt.setdefault(rcpt.lower(), []).append(len(self._messages) - 1)
            entry["status"] = 250
            entry["resource_id"] = message_id
        if rule is not None and rule.fault == "timeout_after_accept":
            await asyncio.sleep(rule.hold_ms / 1000)
        return f"250 2.0.0 Ok: queued as {queue_id}"


class _Handler:
    """aiosmtpd's handler hooks, handing over to the SmtpApi."""

    def __init__(self, api: SmtpApi) -> None:
        self.api = api

    async def handle_RCPT(  # noqa: N802 - aiosmtpd's hook names
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        return await self.api.rcpt(session, envelope, address)

    async def handle_DATA(  # noqa: N802 - aiosmtpd's hook names
        self, server: SMTP, session: Session, envelope: Envelope
    ) -> str:
        return await self.api.data(server, session, envelope)


async def _hang_up(server: SMTP, last_words: str | None = None) -> None:
    """Close the connection (after `last_words`, if any) and never return: aiosmtpd cancels the
    session's handler when the connection is lost."""
    if last_words:
        await server.push(last_words)
    transport = server.transport
    if transport is not None:
        if last_words:
            transport.close()
        else:
            transport.abort()
    await asyncio.Event().wait()


def _fault_reply(rule: FaultRule) -> tuple[int, str]:
    if rule.fault == "rate_limit":
        code = rule.code or 421
        default = f"4.7.0 Too many messages, slow down; try again in {rule.retry_after_s} s"
        return code, _one_line(rule.message or default)
    code = rule.status or 451
    default = _DEFAULT_TEXT.get(code, f"{code // 100}.0.0 Transaction failed")
    return code, _one_line(rule.message or default)


def _parse(raw: bytes) -> dict[str, Any]:
    """What a test asks of a message; a part that does not parse is None, never an error."""
    out: dict[str, Any] = dict.fromkeys(
        (
            "subject",
            "from",
            "to",
            "message_id",
            "list_unsubscribe",
            "list_unsubscribe_post",
            "text",
            "html",
            "content_type",
        )
    )
    out["dkim_signature"] = False
    out["header_names"] = []
    try:
        message = BytesParser(policy=policy.default).parsebytes(raw)
    except Exception:  # noqa: BLE001 - anything may arrive; it is kept unparsed
        return out
    assert isinstance(message, EmailMessage)  # noqa: S101 (policy.default makes EmailMessage)
    out["header_names"] = list(message.keys())
    for key, header in (
        ("subject", "Subject"),
        ("from", "From"),
        ("to", "To"),
        ("message_id", "Message-ID"),
        ("list_unsubscribe", "List-Unsubscribe"),
        ("list_unsubscribe_post", "List-Unsubscribe-Post"),
    ):
        try:
            value = message.get(header)
            out[key] = str(value).strip() if value is not None else None
        except Exception:  # noqa: BLE001, S112 - a malformed header stays None
            continue
    out["dkim_signature"] = "DKIM-Signature" in message
    out["content_type"] = message.get_content_type()
    for key, subtype in (("text", "plain"), ("html", "html")):
        try:
            part = message.get_body(preferencelist=(subtype,))
            out[key] = part.get_content() if part is not None else None
        except Exception:  # noqa: BLE001, S112 - an undecodable part stays None
            continue
    return out
