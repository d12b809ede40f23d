"""E-mail over SMTP: a multipart message (plain text and HTML), STARTTLS, AUTH, DKIM.

settings: `host`, `port` (default 587), `from_address` (an address), `from_name` (optional
display name), `starttls` (default true; false only for a relay on a trusted network: no
credentials then go out in clear, AUTH needs TLS), `tls_ca_file` (optional PEM file of the
authority to trust instead of the system's, for an internal relay), `list_unsubscribe`
(optional: one or more `https:` or `mailto:` URIs, comma-separated; `{recipient}` in one is
replaced by the URL-quoted recipient address), `dkim_selector` and `dkim_domain` (the From
domain by default), `max_bytes` (default 10,000,000: larger messages are refused before any
connection)
credentials: `username` and `password` (optional together: no AUTH without them),
`dkim_private_key` (optional PEM, RSA: every message is then signed)

The message. `send(text, to=ADDRESS)` keeps the adapters' one protocol, with optional keywords
only the e-mail channel reads (the others do not take them, so a caller passes them for e-mail
only):
- `subject=`: the Subject. Without it, a text whose first line is `Subject: ...` followed by an
  empty line carries it (the format an e-mail template renders: one string, so the worker can
  hand it over and look it up like any other rendition); otherwise the text's first line is the
  subject. A subject, address or Message-ID with a line break (CR, LF, U+2028, NEL) or another
  control character is refused (PERMANENT), never folded into a second header; non-ASCII
  subjects are encoded (RFC 2047) by the standard library.
- `html=`: the HTML part, already safe (the broadcaster's web rendition, autoescaped). Without it
  the HTML part is made from the text here: every character escaped (`<script>` shows as text),
  paragraphs and line breaks kept, `dir="auto"` so right-to-left text reads right.
- `routine=True`: a routine category (a newsletter, a lunch menu). Only then do
  `List-Unsubscribe` (and, with an https URI, `List-Unsubscribe-Post: List-Unsubscribe=One-Click`,
  RFC 8058) appear. The default is False: an emergency never offers an unsubscribe.
- `message_id=`: a stable Message-ID (e.g. made from the delivery's id), so a resend after an
  ambiguous failure carries the same one and the receiving client can drop the duplicate.
  Without it one is made (`email.utils.make_msgid` on the From domain). It is the receipt's
  `provider_id`.
- `reply_to` (the Message-ID of the message this corrects) sets In-Reply-To and References;
  `valid_for_s` sets an `Expires` header (RFC 4021), which some clients honour.

Why smtplib and email.message: both in the standard library (no dependency to audit), smtplib
lets this module drive each step (connect, STARTTLS with our own TLS context, AUTH, MAIL, RCPT,
DATA) and so tell "refused before the payload" (retry safely) from "lost after the payload"
(ambiguous), and EmailMessage with `policy.SMTP` does the MIME and RFC 2047 encoding. DKIM
signing is dkimpy's (the maintained implementation, also used by mail servers' milters).

Errors. A 5xx reply is PERMANENT, its code and text in `detail` and in `raw` (`smtp_code`,
`smtp_reply`, `stage`); a 4xx reply (421 included), a refused, reset or timed-out connection
before the payload went out, a TLS error other than a bad certificate are RETRYABLE; a lost
connection or a timeout after the payload was sent and before the reply is AMBIGUOUS. A server
without STARTTLS (when it is required), an untrusted certificate and AUTH the server does not
offer are PERMANENT: retrying cannot help. One connection per adapter instance (adapters are per
thread), reused while the server keeps it open and made again when it closed it.

Lookup. A real SMTP server cannot be asked whether it took a message: `lookup` answers None
there (so an AMBIGUOUS send is sent again; with a stable `message_id` the receiving client sees
the same Message-ID twice). The sandbox can: with `sandbox_url` set, `lookup` asks the sandbox's
`GET /_sandbox/smtp/messages?to=ADDRESS` for a message with this text kept at or after `since`.

The sandbox. With `sandbox_url` set, the adapter asks `GET {sandbox_url}/_sandbox/smtp` on which
port the sandbox's SMTP server listens (chosen at start) and which certificate it presents, and
sends to the sandbox URL's host on that port, trusting exactly that certificate; `host`, `port`
and `tls_ca_file` are then ignored, so a rehearsal never reaches a real mail server.
"""

from __future__ import annotations

import html as html_lib
import json
import re
import smtplib
import socket
import ssl
import unicodedata
import urllib.error
import urllib.parse
import urllib.request
from datetime import UTC, datetime, timedelta
from email import policy
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from typing import Any

import dkim
import idna

from . import AccountConfig, DeliveryError, Outcome, Receipt, register
from .transport import one_line

DEFAULT_PORT = 587
DEFAULT_MAX_BYTES = 10_000_000
_FALSE = {"false", "0", "no", "off"}
_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_LOCAL = re.compile(rf"^{_ATOM}(?:\.{_ATOM})*$")
_LABEL = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$")
_MSGID = re.compile(r"^<[\x21-\x3b\x3d\x3f-\x7e]+@[\x21-\x3b\x3d\x3f-\x7e]+>$")
_SUBJECT_LINE = re.compile(r"\ASubject:[ \t]*([^\r\n]*)\r?\n\r?\n", re.IGNORECASE)
# Headers DKIM signs: the ones a reader sees and the ones RFC 8058 requires to be covered.
_DKIM_HEADERS = [
    b"from",
    b"to",
    b"subject",
    b"date",
    b"message-id",
    b"in-reply-to",
    b"references",
    b"list-unsubscribe",
    b"list-unsubscribe-post",
    b"mime-version",
    b"content-type",
    b"expires",
    b"auto-submitted",
]


def _permanent(detail: str, **raw: Any) -> DeliveryError:
    return DeliveryError(Outcome.PERMANENT, detail, raw=raw or None)


def _has_control(value: str) -> bool:
    """A control character or a line or paragraph separator (which Python's e-mail package
    also takes for a line break)."""
    return any(unicodedata.category(c) in ("Cc", "Zl", "Zp") for c in value)


def check_address(value: str | None, what: str) -> str:
    """`value` as a plain address (local@domain, an IDN domain in its ASCII form), or a
    PERMANENT DeliveryError naming `what`. Display names, comments, quoted local parts and
    non-ASCII local parts (which would need SMTPUTF8) are refused."""
    if not value or len(value) > 320 or _has_control(value):
        raise _permanent(f"email: {what} is not a valid address")
    local, at, domain = value.rpartition("@")
    if not at or not local or len(local) > 64 or not _LOCAL.match(local):
        raise _permanent(f"email: {what} is not a valid address")
    try:
        ascii_domain = domain.encode("ascii").decode() if domain.isascii() else ""
        if not ascii_domain:
            ascii_domain = idna.encode(domain, uts46=True).decode("ascii")
    except (idna.IDNAError, UnicodeError):
        raise _permanent(f"email: {what} has an invalid domain") from None
    labels = ascii_domain.rstrip(".").split(".")
    if len(labels) < 2 or len(ascii_domain) > 253 or not all(_LABEL.match(x) for x in labels):
        raise _permanent(f"email: {what} has an invalid domain")
    return f"{local}@{ascii_domain}"


def split_rendition(text: str) -> tuple[str | None, str]:
    """(subject, body) of a text that starts with `Subject: ...` and an empty line, else
    (None, text)."""
    match = _SUBJECT_LINE.match(text)
    if match is None:
        return None, text
    return match.group(1).strip(), text[match.end() :]


def html_from_text(body: str, subject: str) -> str:
    """The HTML part made from the plain text: everything escaped, paragraphs and line breaks
    kept, each paragraph's direction from its own text."""
    paragraphs = [p for p in re.split(r"\n\s*\n", body.replace("\r\n", "\n")) if p.strip()]
    rendered = "\n".join(
        '<p dir="auto">'
        + "<br>\n".join(html_lib.escape(line) for line in p.strip("\n").split("\n"))
        + "</p>"
        for p in paragraphs
    )
    return html_document(subject, rendered)


def html_document(subject: str, body_html: str) -> str:
    """An HTML part around content that is already safe: the subject escaped as its title."""
    return (
        '<!DOCTYPE html>\n<html><head><meta charset="utf-8">'
        f"<title>{html_lib.escape(subject)}</title></head>\n"
        f"<body>\n{body_html}\n</body></html>\n"
    )


def _normalized(text: str) -> str:
    return text.replace("\r\n", "\n").rstrip("\n")


class _Failure(Exception):
    """An SMTP step answered with an error code (not 2xx/3xx as expected)."""

    def __init__(self, stage: str, code: int, reply: str) -> None:
        super().__init__(f"{stage}: {code} {reply}")
        self.stage, self.code, self.reply = stage, code, reply


@register
class EmailAdapter:
    channel = "email"

    def __init__(self, account: AccountConfig) -> None:
        settings, credentials = account.settings, account.credentials
        self.account = account
        self._secrets = account.secrets()
        try:
            self._from = check_address(settings.get("from_address"), "from_address")
        except DeliveryError as exc:
            raise ValueError(f"e-mail account {account.name!r}: {exc.detail}") from None
        self._from_name = settings.get("from_name") or ""
        if _has_control(self._from_name):
            raise ValueError(f"e-mail account {account.name!r}: from_name has a control character")
        self._domain = self._from.rpartition("@")[2]
        self._host = settings.get("host") or ""
        try:
            self._port = int(settings.get("port") or DEFAULT_PORT)
            self._max_bytes = int(settings.get("max_bytes") or DEFAULT_MAX_BYTES)
        except ValueError:
            raise ValueError(
                f"e-mail account {account.name!r}: port and max_bytes are numbers"
            ) from None
        if not self._host and not account.sandbox_url:
            raise ValueError(f"e-mail account {account.name!r}: needs host (the SMTP server)")
        self._starttls = (settings.get("starttls") or "true").strip().lower() not in _FALSE
        self._ca_file = settings.get("tls_ca_file") or None
        self._username = credentials.get("username") or None
        self._password = credentials.get("password") or None
        if bool(self._username) != bool(self._password):
            raise ValueError(f"e-mail account {account.name!r}: username and password go together")
        if self._username and not self._starttls:
            raise ValueError(
                f"e-mail account {account.name!r}: AUTH needs starttls (no password in clear)"
            )
        self._unsubscribe = self._unsubscribe_uris(settings.get("list_unsubscribe") or "")
        self._dkim_key = credentials.get("dkim_private_key") or None
        self._dkim_selector = settings.get("dkim_selector") or None
        self._dkim_domain = settings.get("dkim_domain") or self._domain
        if self._dkim_key and not self._dkim_selector:
            raise ValueError(f"e-mail account {account.name!r}: a DKIM key needs dkim_selector")
        self._sandbox = account.sandbox_url.rstrip("/") if account.sandbox_url else None
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        self._smtp: smtplib.SMTP | None = None

    def _unsubscribe_uris(self, value: str) -> list[str]:
        uris = [u.strip() for u in value.split(",") if u.strip()]
        for uri in uris:
            scheme = urllib.parse.urlsplit(uri).scheme.lower()
            if scheme not in ("https", "mailto") or _has_control(uri) or re.search(r"[\s<>]", uri):
                raise ValueError(
                    f"e-mail account {self.account.name!r}: list_unsubscribe takes https: or "
                    "mailto: URIs"
                )
        return uris

    # -- the contract ---------------------------------------------------------------------------

    def send(
        self,
        text: str,
        *,
        to: str | None = None,
        reply_to: str | None = None,
        valid_for_s: int | None = None,
        subject: str | None = None,
        html: str | None = None,
        routine: bool = False,
        message_id: str | None = None,
    ) -> Receipt:
        recipient = check_address(to, "the recipient (to=)")
        try:
            message, message_id = self._message(
                text, recipient, reply_to, valid_for_s, subject, html, routine, message_id
            )
            payload = message.as_bytes(policy=policy.SMTP)
        except (ValueError, TypeError) as exc:  # the e-mail package refused a value
            detail = one_line(f"email: the message could not be built: {exc}", self._secrets)
            raise _permanent(detail) from None
        if self._dkim_key:
            payload = self._sign(payload) + payload
        if len(payload) > self._max_bytes:
            raise _permanent(
                f"email: the message is {len(payload)} bytes, over max_bytes {self._max_bytes}"
            )
        queued = self._transaction(recipient, payload)
        raw = {
            "message_id": message_id,
            "to": recipient,
            "smtp_reply": queued,
            "size": len(payload),
        }
        return Receipt(message_id, None, raw)

    def lookup(self, text: str, *, to: str | None = None, since: datetime) -> Receipt | None:
        """The message to `to` with this text kept at or after `since`: only the sandbox can
        say; a real SMTP server cannot be asked, so None (send again)."""
        recipient = check_address(to, "the recipient (to=)")
        if self._sandbox is None:
            return None
        _, body = split_rendition(text)
        wanted = _normalized(body)
        floor = since if since.tzinfo else since.replace(tzinfo=UTC)
        query = urllib.parse.urlencode({"to": recipient})
        for item in self._control(f"smtp/messages?{query}"):
            kept = datetime.fromisoformat(str(item.get("time", "")).replace("Z", "+00:00"))
            if kept >= floor and _normalized(item.get("text") or "") == wanted:
                return Receipt(str(item["message_id"]), None, item)
        return None

    def retract(self, receipt: Receipt) -> None:
        raise DeliveryError(
            Outcome.PERMANENT,
            "email: an e-mail cannot be retracted once delivered; send a correction instead",
        )

    def close(self) -> None:
        """QUIT and close the connection, if one is open."""
        smtp, self._smtp = self._smtp, None
        if smtp is not None:
            try:
                smtp.quit()
            except (smtplib.SMTPException, OSError):
                smtp.close()

    # -- the message ----------------------------------------------------------------------------

    def _message(
        self,
        text: str,
        recipient: str,
        reply_to: str | None,
        valid_for_s: int | None,
        subject: str | None,
        html: str | None,
        routine: bool,
        message_id: str | None,
    ) -> tuple[EmailMessage, str]:
        carried, body = split_rendition(text)
        if subject is None:
            subject = carried if carried is not None else body.strip().split("\n", 1)[0]
        subject = subject.strip()
        if _has_control(subject.replace("\t", " ")):
            raise _permanent("email: the subject has a line break or control character; refused")
        if not subject:
            raise _permanent("email: no subject (give subject= or a 'Subject:' first line)")
        if message_id is None:
            message_id = make_msgid(domain=self._domain)
        elif not _MSGID.match(message_id):
            raise _permanent("email: message_id must look like <id@domain>")
        message = EmailMessage(policy=policy.SMTP)
        message["From"] = Address(self._from_name, addr_spec=self._from)
        message["To"] = Address(addr_spec=recipient)
        message["Subject"] = subject
        message["Date"] = format_datetime(datetime.now(UTC))
        message["Message-ID"] = message_id
        message["Auto-Submitted"] = "auto-generated"  # RFC 3834: no out-of-office replies
        if reply_to:
            if not _MSGID.match(reply_to):
                raise _permanent("email: reply_to must be the Message-ID <id@domain> it corrects")
            message["In-Reply-To"] = reply_to
            message["References"] = reply_to
        if valid_for_s is not None:
            expires = datetime.now(UTC) + timedelta(seconds=int(valid_for_s))
            message["Expires"] = format_datetime(expires)
        if routine and self._unsubscribe:
            quoted = urllib.parse.quote(recipient, safe="")
            uris = [u.replace("{recipient}", quoted) for u in self._unsubscribe]
            message["List-Unsubscribe"] = ", ".join(f"<{u}>" for u in uris)
            if any(u.lower().startswith("https:") for u in uris):
                message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
        # Quoted-printable: 7-bit safe for any server (8BITMIME is not assumed), and the plain
        # text stays readable in the raw message.
        message.set_content(body, cte="quoted-printable")
        alternative = html if html is not None else html_from_text(body, subject)
        message.add_alternative(alternative, subtype="html", cte="quoted-printable")
        return message, message_id

    def _sign(self, payload: bytes) -> bytes:
        assert self._dkim_key is not None and self._dkim_selector is not None  # noqa: S101 (checked by the caller; narrows the types)
        present = {
            line.split(b":", 1)[0].strip().lower()
            for line in payload.split(b"\r\n\r\n", 1)[0].split(b"\r\n")
            if line[:1] not in (b" ", b"\t") and b":" in line
        }
        try:
            signature = dkim.sign(
                payload,
                self._dkim_selector.encode(),
                self._dkim_domain.encode(),
                self._dkim_key.encode(),
                canonicalize=(b"relaxed", b"relaxed"),
                include_headers=[h for h in _DKIM_HEADERS if h in present],
            )
        except Exception as exc:  # dkimpy raises its own and the key parser's errors
            detail = one_line(f"email: DKIM signing failed ({type(exc).__name__})", self._secrets)
            raise _permanent(detail) from None
        return bytes(signature)

    # -- SMTP -----------------------------------------------------------------------------------

    def _transaction(self, recipient: str, payload: bytes) -> str:
        """MAIL, RCPT and DATA on the adapter's connection; the server's 250 text."""
        for attempt in (1, 2):
            reused = self._smtp is not None
            smtp = self._connection()
            try:
                size = [f"SIZE={len(payload)}"] if smtp.has_extn("size") else []
                self._expect(smtp.mail(self._from, size), "MAIL", 250)
                self._expect(smtp.rcpt(recipient), "RCPT", 250, 251)
                self._expect(smtp.docmd("DATA"), "DATA", 354)
            except _Failure as failure:
                self._drop(smtp, polite=failure.code != 421)
                if failure.code == 421 and reused and attempt == 1:
                    continue  # the server closed an idle connection (421 timeout): reconnect
                raise self._reply_error(failure) from None
            except (smtplib.SMTPServerDisconnected, OSError) as exc:
                self._drop(smtp)
                if reused and attempt == 1:
                    continue  # the server closed an idle connection: nothing was sent
                raise self._network(exc, "before the message was sent") from None
            return self._data(smtp, payload)
        raise AssertionError("unreachable")  # pragma: no cover

    def _data(self, smtp: smtplib.SMTP, payload: bytes) -> str:
        # RFC 5321 4.5.2: a line starting with a dot gets another; the payload ends CRLF.CRLF.
        data = re.sub(rb"(?m)^\.", b"..", payload)
        if not data.endswith(b"\r\n"):
            data += b"\r\n"
        try:
            smtp.send(data + b".\r\n")
            code, reply = smtp.getreply()
        except (smtplib.SMTPServerDisconnected, OSError) as exc:
            self._drop(smtp)
            name = type(exc).__name__
            detail = one_line(
                f"email: connection lost after the message was sent, before the server "
                f"answered ({name}: {exc}); look it up before any resend",
                self._secrets,
            )
            raise DeliveryError(
                Outcome.AMBIGUOUS, detail, raw={"exception": name, "stage": "DATA"}
            ) from None
        text = reply.decode("utf-8", "replace")
        if code != 250:
            self._drop(smtp, polite=code != 421)
            raise self._reply_error(_Failure("DATA", code, text)) from None
        return text

    def _connection(self) -> smtplib.SMTP:
        if self._smtp is not None:
            return self._smtp
        host, port, context = self._endpoint()
        try:
            # The EHLO name is the From domain (smtplib's default asks DNS for our own name).
            smtp = smtplib.SMTP(host, port, self._domain, timeout=self.account.timeout_s)
        except smtplib.SMTPConnectError as exc:
            failure = _Failure("connect", exc.smtp_code, _reply_text(exc.smtp_error))
            raise self._reply_error(failure) from None
        except OSError as exc:
            raise self._network(exc, "while connecting") from None
        try:
            self._expect(smtp.ehlo(), "EHLO", 250)
            if self._starttls:
                if not smtp.has_extn("starttls"):
                    smtp.close()
                    raise _permanent(f"email: {host}:{port} does not offer STARTTLS; not sending")
                self._expect(smtp.starttls(context=context), "STARTTLS", 220)
                self._expect(smtp.ehlo(), "EHLO", 250)
            if self._username and self._password:
                self._login(smtp)
        except _Failure as failure:
            smtp.close()
            raise self._reply_error(failure) from None
        except ssl.SSLCertVerificationError as exc:
            smtp.close()
            detail = one_line(f"email: {host}:{port}'s certificate: {exc.verify_message}")
            raise _permanent(detail, exception=type(exc).__name__) from None
        except smtplib.SMTPNotSupportedError as exc:
            smtp.close()
            raise _permanent(one_line(f"email: {exc}", self._secrets)) from None
        except (smtplib.SMTPServerDisconnected, OSError) as exc:
            smtp.close()
            raise self._network(exc, "while connecting") from None
        self._smtp = smtp
        return smtp

    def _login(self, smtp: smtplib.SMTP) -> None:
        assert self._username and self._password  # noqa: S101 (checked by the caller; narrows the types)
        try:
            smtp.login(self._username, self._password)
        except smtplib.SMTPAuthenticationError as exc:
            raise _Failure("AUTH", exc.smtp_code, _reply_text(exc.smtp_error)) from None
        except smtplib.SMTPException as exc:
            if isinstance(exc, smtplib.SMTPNotSupportedError | smtplib.SMTPServerDisconnected):
                raise
            raise _permanent(one_line(f"email: AUTH failed: {exc}", self._secrets)) from None

    def _endpoint(self) -> tuple[str, int, ssl.SSLContext]:
        if self._sandbox is not None:
            where = self._control("smtp")
            # Trust exactly the certificate the sandbox's control endpoint serves; its names are
            # the loopback's, and the sandbox may be reached by another (a compose service).
            context = ssl.create_default_context(cadata=str(where["cert_pem"]))
            context.check_hostname = False
            host = urllib.parse.urlsplit(self._sandbox).hostname or str(where["host"])
            return host, int(where["port"]), context
        return self._host, self._port, ssl.create_default_context(cafile=self._ca_file)

    def _control(self, name: str) -> Any:
        """A sandbox control endpoint's JSON (sandbox mode only)."""
        url = f"{self._sandbox}/_sandbox/{name}"
        try:
            # The sandbox's own control endpoint, from the account's sandbox_url.
            with self._opener.open(url, timeout=self.account.timeout_s) as response:  # noqa: S310
                return json.loads(response.read())
        except (urllib.error.URLError, OSError, ValueError) as exc:
            detail = one_line(f"email: the sandbox at {self._sandbox} did not answer: {exc}")
            raw = {"exception": type(exc).__name__}
            raise DeliveryError(Outcome.RETRYABLE, detail, raw=raw) from None

    @staticmethod
    def _expect(answer: tuple[int, bytes], stage: str, *ok: int) -> None:
        code, reply = answer
        if code not in ok:
            raise _Failure(stage, code, _reply_text(reply))

    def _drop(self, smtp: smtplib.SMTP, *, polite: bool = False) -> None:
        """Forget the connection after a failure, with a QUIT if `polite` (RSET-and-reuse
        would save a handshake, but a fresh connection is always in a known state)."""
        if self._smtp is smtp:
            self._smtp = None
        if polite:
            try:
                smtp.quit()
                return
            except (smtplib.SMTPException, OSError):
                pass
        smtp.close()

    def _reply_error(self, failure: _Failure) -> DeliveryError:
        reply = one_line(failure.reply, self._secrets)
        detail = one_line(f"email: {failure.stage} refused: {failure.code} {reply}", self._secrets)
        raw = {"smtp_code": failure.code, "smtp_reply": reply, "stage": failure.stage}
        if 400 <= failure.code < 500:
            return DeliveryError(Outcome.RETRYABLE, detail, raw=raw)
        return DeliveryError(Outcome.PERMANENT, detail, raw=raw)

    def _network(self, exc: BaseException, when: str) -> DeliveryError:
        name = type(exc).__name__
        if isinstance(exc, ssl.SSLCertVerificationError):
            detail = one_line(f"email: the server's certificate: {exc.verify_message}")
            return _permanent(detail, exception=name)
        reason = "timed out" if isinstance(exc, socket.timeout | TimeoutError) else str(exc)
        detail = one_line(f"email: {name} {when}: {reason}", self._secrets)
        return DeliveryError(Outcome.RETRYABLE, detail, raw={"exception": name})


def _reply_text(reply: bytes | str) -> str:
    text = reply.decode("utf-8", "replace") if isinstance(reply, bytes) else str(reply)
    return " ".join(text.split())
