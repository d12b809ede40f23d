"""Staff channels through Apprise: chat rooms and e-mail lists (Teams, Slack, Google Chat, ntfy,
mailto, ...) reached by Apprise URLs, one delivery per URL.

credentials: label -> one Apprise URL (`slack://...`, `msteams://...`, `gchat://...`,
`ntfys://...`, `mailtos://...`). The URLs carry the services' tokens, so they are secrets: the
district file names the environment variable of each (`credentials_env = { chat =
"STAFF_CHAT_URL" }`) and the label (`chat`) is what a delivery's recipient, the ledger, errors and
status output show. A URL appears nowhere but in the call to Apprise: an error names it as
`scheme://•••` and every part of it is masked out of what Apprise reports.
settings: none.

`send(text, to=LABEL)` posts `text` to the label's URL: the first line is the title, the rest
(after an empty line) the body; a text without an empty line after its first line is all body.
Apprise answers only "sent" or "not sent" (and "timed out"): not sent is RETRYABLE (Celery's
retry with back-off, never Apprise's sleeping retries), as is a call that timed out or raised;
a URL Apprise cannot read, or a label the account has no URL for, is PERMANENT. Apprise cannot
say whether a post that failed arrived, so a retried post may be seen twice in a chat room; a
staff notice is better twice than never.

Lookup: no chat service is asked whether it has a post, so `lookup` answers None. Retract: a
post cannot be taken back (PERMANENT).

The sandbox. With `sandbox_url` set, every label posts to the sandbox's staff chat
(`json://HOST:PORT/_staff/ACCOUNT/LABEL`, Apprise's generic JSON plugin) and the credentials are
not used, so a rehearsal never reaches a real room.

Apprise's own log lines can carry a service's full URL (its tokens): its logger does not
propagate to the application's handlers; the adapter reads the lines of each call from the
call's result, masked.
"""

from __future__ import annotations

import logging
import re
import uuid
from datetime import UTC, datetime
from urllib.parse import quote, unquote, urlsplit

import apprise

from . import AccountConfig, DeliveryError, Outcome, Receipt, register
from .transport import one_line

LABEL = re.compile(r"^[a-z0-9][a-z0-9_-]{0,39}$")
MASK = "•••"
# Parts of a URL shorter than this are not masked on their own (a port, "www", "com").
_SHORTEST_SECRET = 4

_apprise_log = logging.getLogger("apprise")
_apprise_log.propagate = False
_apprise_log.addHandler(logging.NullHandler())

# Every part of every URL an adapter of this process was given, for the scrubber below.
_SECRETS: set[str] = set()


class _Scrubber(logging.Filter):
    """urllib3 logs each request's path at DEBUG, and a webhook's path is its token: the
    records of its connection pool have every known URL part masked."""

    def filter(self, record: logging.LogRecord) -> bool:
        if _SECRETS:
            message = record.getMessage()
            scrubbed = scrub(message, sorted(_SECRETS, key=len, reverse=True))
            if scrubbed != message:
                record.msg, record.args = scrubbed, ()
        return True


logging.getLogger("urllib3.connectionpool").addFilter(_Scrubber())


def masked(url: str) -> str:
    """What an error may say about a URL: its scheme only."""
    scheme = url.partition("://")[0] if "://" in url else ""
    return f"{scheme}://{MASK}" if scheme.isalnum() else MASK


def secret_parts(url: str) -> list[str]:
    """The URL and every part of it that may be a token (longest first), as written and
    URL-decoded, for masking them out of Apprise's messages."""
    rest = url.partition("://")[2] or url
    pieces = {url, rest, unquote(url), unquote(rest)}
    for piece in re.split(r"[/:@?&=#,;+ ]+", rest):
        for form in (piece, unquote(piece), quote(unquote(piece), safe="")):
            if len(form) >= _SHORTEST_SECRET:
                pieces.add(form)
    return sorted(pieces, key=len, reverse=True)


def scrub(text: str, secrets: list[str]) -> str:
    for secret in secrets:
        text = text.replace(secret, MASK)
    return text


def split_title(text: str) -> tuple[str, str]:
    """(title, body): the first line when an empty line follows it, else no title."""
    normalized = text.replace("\r\n", "\n").strip("\n")
    first, sep, rest = normalized.partition("\n\n")
    if sep and "\n" not in first:
        return first.strip(), rest.strip("\n")
    return "", normalized


@register
class AppriseAdapter:
    channel = "apprise"

    def __init__(self, account: AccountConfig) -> None:
        self.account = account
        self._timeout = account.timeout_s
        self._urls: dict[str, str] = {}
        self._sandbox = account.sandbox_url
        if self._sandbox:
            parts = urlsplit(self._sandbox)
            if not parts.hostname:
                raise ValueError(f"apprise account {account.name!r}: the sandbox URL has no host")
            port = f":{parts.port}" if parts.port else ""
            self._sandbox_base = f"json://{parts.hostname}{port}/_staff/{quote(account.name)}/"
        else:
            for label, url in account.credentials.items():
                if not LABEL.match(label):
                    raise ValueError(
                        f"apprise account {account.name!r}: {label!r} is not a label "
                        "(lower-case letters, digits, - and _)"
                    )
                self._urls[label] = url.strip()
                _SECRETS.update(secret_parts(url.strip()))
        self._clients: dict[str, apprise.Apprise] = {}

    def url_for(self, label: str) -> str:
        if not LABEL.match(label):
            raise DeliveryError(Outcome.PERMANENT, f"apprise: {label!r} is not a URL label")
        if self._sandbox:
            return self._sandbox_base + label
        url = self._urls.get(label)
        if not url:
            raise DeliveryError(
                Outcome.PERMANENT, f"apprise: account {self.account.name} has no URL {label!r}"
            )
        return url

    def _client(self, label: str) -> tuple[apprise.Apprise, list[str], str]:
        url = self.url_for(label)
        secrets = [] if self._sandbox else secret_parts(url)
        if label not in self._clients:
            client = apprise.Apprise()
            try:
                added = client.add(url)
            except Exception:  # a URL Apprise's parser chokes on is not a URL it knows
                added = False
            if not added:
                raise DeliveryError(
                    Outcome.PERMANENT,
                    f"apprise: {label}: {masked(url)} is not a URL Apprise can send to",
                )
            self._clients[label] = client
        return self._clients[label], secrets, url

    def send(
        self,
        text: str,
        *,
        to: str | None = None,
        reply_to: str | None = None,
        valid_for_s: int | None = None,
    ) -> Receipt:
        if not to:
            raise DeliveryError(Outcome.PERMANENT, "apprise: a delivery names the URL's label")
        client, secrets, url = self._client(to)
        title, body = split_title(text)
        try:
            result = client.notify(body=body or title, title=title, timeout=self._timeout)
        except Exception as exc:  # Apprise reports failures in its result; anything else is odd
            raise DeliveryError(
                Outcome.RETRYABLE,
                f"apprise: {to}: {masked(url)} failed ({type(exc).__name__})",
            ) from None
        if result:
            sent_at = datetime.now(UTC).isoformat(timespec="seconds")
            return Receipt(
                f"apprise-{uuid.uuid4().hex[:16]}",
                None,
                {"label": to, "service": masked(url), "sent_at": sent_at},
            )
        status = getattr(getattr(result, "status", None), "name", "FAILURE").lower()
        why = [
            scrub(one_line(entry.message), secrets)
            for entry in result.logs()
            if entry.level in ("WARNING", "ERROR", "CRITICAL")
        ]
        reason = f": {why[-1][:300]}" if why else ""
        outcome = Outcome.PERMANENT if status == "nomatch" else Outcome.RETRYABLE
        raise DeliveryError(
            outcome,
            f"apprise: {to}: {masked(url)} not sent ({status}){reason}",
            raw={"label": to, "status": status, "log": why[-5:]},
        )

    def lookup(self, text: str, *, to: str | None = None, since: datetime) -> Receipt | None:
        """No chat service can be asked whether it has a post: nothing is known."""
        return None

    def retract(self, receipt: Receipt) -> None:
        raise DeliveryError(Outcome.PERMANENT, "apprise: a staff chat post cannot be taken back")
