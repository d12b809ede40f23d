"""The subset of the Twilio REST API (2010-04-01) that twilio's `client.messages` uses.

Routes: `POST /2010-04-01/Accounts/{sid}/Messages.json` (create), `GET .../Messages.json` (list,
newest first; filters `To`, `From`, `DateSent`, `DateSent<`, `DateSent>`; paging `PageSize`,
`Page`, `PageToken`) and `GET .../Messages/{sid}.json` (fetch). HTTP basic auth with the account
SID and its auth token: when the sandbox is given `twilio_auth_tokens` the token must match,
otherwise any non-empty token is accepted for the SID in the path.

After a message is accepted, a background worker moves it to `sent` and then `delivered` (or
`undelivered`/`failed` with an error code for numbers in `delivery_failures`) and, when the
message has a `StatusCallback`, POSTs each status there, signed with `X-Twilio-Signature` the way
Twilio signs (HMAC-SHA1 of the URL and the sorted form fields, keyed with the account's auth
token). A callback URL that does not answer is retried a few times, then dropped.
"""

from __future__ import annotations

import base64
import contextlib
import hmac
import http.client
import math
import re
import secrets
import threading
import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from email.utils import format_datetime
from typing import Any
from urllib.parse import urlencode, urlsplit

from twilio.request_validator import RequestValidator

from .core import FaultRule, Incoming, Reply, Stopper, iso, parse_time, utcnow

API_VERSION = "2010-04-01"
E164 = re.compile(r"^\+[1-9]\d{6,14}$")
SERVICE_SENDER = "+15005550006"  # the number a Messaging Service "picks" from its pool
DEFAULT_INVALID = ("+15005550001",)  # Twilio's magic "invalid number" for test credentials
DEFAULT_FAILURES: dict[str, tuple[str, int]] = {
    "+15005559001": ("undelivered", 30003),  # Unreachable destination handset
    "+15005559002": ("failed", 30008),  # Unknown error
}
ERROR_MESSAGES = {
    30003: "Unreachable destination handset",
    30005: "Unknown destination handset",
    30006: "Landline or unreachable carrier",
    30007: "Message filtered",
    30008: "Unknown error",
}
USER_AGENT = "TwilioProxy/1.1"

_GSM7 = (
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡"
    "ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
_GSM7_EXT = "^{}\\[~]|€\f"


def segments(body: str) -> int:
    """SMS segments: GSM-7 (160/153 septets, extension characters cost 2) or UCS-2 (70/67)."""
    if all(c in _GSM7 or c in _GSM7_EXT for c in body):
        units = sum(2 if c in _GSM7_EXT else 1 for c in body)
        return 1 if units <= 160 else math.ceil(units / 153)
    units = len(body.encode("utf-16-le")) // 2
    return 1 if units <= 70 else math.ceil(units / 67)


def twilio_error(status: int, code: int | None, message: str, **extra: Any) -> Reply:
    body: dict[str, Any] = {"code": code, "message": message, "more_info": None, "status": status}
    if code is not None:
        body["more_info"] = f"https://www.twilio.com/docs/errors/{code}"
    body.update(extra)
    return Reply(status, body)


def authenticate(req: Incoming, sid: str, tokens: Mapping[str, str] | None) -> str | Reply:
    """HTTP basic auth as Twilio checks it: the account SID in the path and its auth token (any
    non-empty token when `tokens` is None). The token, or the 401 to answer."""
    denied = twilio_error(
        401, 20003, "Authenticate", detail="Your AccountSid or AuthToken was incorrect."
    )
    denied.headers["WWW-Authenticate"] = 'Basic realm="Twilio API"'
    header = req.headers.get("Authorization") or ""
    if not header.startswith("Basic "):
        return denied
    try:
        user, _, password = base64.b64decode(header[6:]).decode().partition(":")
    except (ValueError, UnicodeDecodeError):
        return denied
    if not hmac.compare_digest(user.encode(), sid.encode()) or not password:
        return denied
    if tokens is not None:
        expected = tokens.get(sid)
        if expected is None or not hmac.compare_digest(password.encode(), expected.encode()):
            return denied
    return password


def post_signed(
    opener: urllib.request.OpenerDirector,
    url: str,
    params: dict[str, str],
    token: str,
    stopper: Stopper,
    retries: int,
    timeout_s: float,
) -> dict[str, Any]:
    """POST a status callback signed with `X-Twilio-Signature` the way Twilio signs, retrying a
    URL that does not answer (or answers 5xx) a few times; what happened, for the posts' view."""
    signature = RequestValidator(token).compute_signature(url, params)
    data = urlencode(params).encode()
    outcome: dict[str, Any] = {"attempts": 0, "ok": False}
    for attempt in range(1 + max(0, retries)):
        if attempt and stopper.sleep(0.1 * 2 ** (attempt - 1)):
            break  # back off before a retry, unless the sandbox is stopping
        outcome["attempts"] = attempt + 1
        outcome["time"] = iso(utcnow())
        try:
            request = urllib.request.Request(  # noqa: S310 (http(s) only: checked on create)
                url,
                data=data,
                method="POST",
                headers={
                    "Content-Type": "application/x-www-form-urlencoded; charset=utf-8",
                    "X-Twilio-Signature": signature,
                    "User-Agent": USER_AGENT,
                },
            )
            with opener.open(request, timeout=timeout_s) as response:
                response.read()
                outcome["http_status"] = response.status
            outcome["ok"] = True
            break
        except urllib.error.HTTPError as exc:
            outcome["http_status"] = exc.code
            outcome["error"] = f"HTTP {exc.code}"
            if exc.code < 500:
                break
        except (OSError, http.client.HTTPException, ValueError) as exc:
            outcome["error"] = f"{type(exc).__name__}: {exc}"
    return outcome


def fault_reply(rule: FaultRule) -> Reply:
    """A fault rule's answer in Twilio's error format (messages and calls alike)."""
    if rule.fault == "rate_limit":
        reply = twilio_error(429, rule.code or 20429, rule.message or "Too Many Requests")
        reply.headers["Retry-After"] = str(rule.retry_after_s)
        return reply
    status = rule.status or 503
    code = rule.code or {500: 20500, 503: 20503}.get(status, status)
    message = rule.message or http.client.responses.get(status, "Error")
    return twilio_error(status, code, message)


def _rfc2822(dt: datetime | None) -> str | None:
    return format_datetime(dt) if dt else None


class TwilioResources:
    """What the sandbox's Twilio APIs (messages here, calls in twilio_voice) share: the account
    tokens, the background worker that moves resources through their statuses, signed status
    callbacks, Twilio's error format."""

    provider = "twilio"
    worker_name = "sandbox-twilio"

    def __init__(
        self,
        lock: threading.RLock,
        stopper: Stopper,
        auth_tokens: Mapping[str, str] | None,
        invalid_numbers: Iterable[str],
        status_delay_s: float,
        callback_retries: int,
        callback_timeout_s: float,
    ) -> None:
        self._lock = lock
        self._stopper = stopper
        self._tokens = dict(auth_tokens) if auth_tokens is not None else None
        self._invalid = set(invalid_numbers)
        self._delay = status_delay_s
        self._retries = callback_retries
        self._cb_timeout = callback_timeout_s
        self._executor: ThreadPoolExecutor | None = None
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        self._generation = 0
        self.reset()

    def reset(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        with self._lock:
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=False, cancel_futures=True)

    def _ensure_executor(self) -> ThreadPoolExecutor:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=16, thread_name_prefix=self.worker_name)
        return self._executor

    def _authenticate(self, req: Incoming, sid: str) -> str | Reply:
        return authenticate(req, sid, self._tokens)

    @staticmethod
    def _not_found(path: str) -> Reply:
        return twilio_error(404, 20404, f"The requested resource {path} was not found")

    def _post_status(self, url: str, params: dict[str, str], token: str) -> dict[str, Any]:
        """POST a signed status callback (retried); what happened."""
        return post_signed(
            self._opener, url, params, token, self._stopper, self._retries, self._cb_timeout
        )

    def fault_reply(self, rule: FaultRule) -> Reply:
        return fault_reply(rule)


class TwilioApi(TwilioResources):
    provider = "twilio"
    worker_name = "sandbox-sms"

    def __init__(
        self,
        lock: threading.RLock,
        stopper: Stopper,
        auth_tokens: Mapping[str, str] | None = None,
        invalid_numbers: Iterable[str] = DEFAULT_INVALID,
        delivery_failures: Mapping[str, tuple[str, int]] | None = None,
        status_delay_s: float = 0.05,
        callback_retries: int = 3,
        callback_timeout_s: float = 2.0,
    ) -> None:
        failures = DEFAULT_FAILURES if delivery_failures is None else delivery_failures
        self._failures = {k: (v[0], int(v[1])) for k, v in failures.items()}
        super().__init__(
            lock,
            stopper,
            auth_tokens,
            invalid_numbers,
            status_delay_s,
            callback_retries,
            callback_timeout_s,
        )

    def reset(self) -> None:
        with self._lock:
            self._generation += 1
            self._messages: dict[str, dict[str, Any]] = {}
            # The sids sent to each number: a lookup by To reads those, not every message (a
            # scan under the lock stalled the sandbox near a million messages).
            self._by_to: dict[str, list[str]] = {}
            self._order = 0

    # -- routes -------------------------------------------------------------------------------

    def handle(self, req: Incoming) -> Reply:
        parts = req.path.strip("/").split("/")
        if len(parts) < 4 or parts[0] != API_VERSION or parts[1] != "Accounts":
            return self._not_found(req.path)
        sid = parts[2]
        token = self._authenticate(req, sid)
        if isinstance(token, Reply):
            return token
        if parts[3:] == ["Messages.json"]:
            if req.method == "POST":
                return self._create(req, sid, token)
            if req.method == "GET":
                return self._list(req, sid)
        is_message = len(parts) == 5 and parts[3] == "Messages" and parts[4].endswith(".json")
        if is_message and req.method == "GET":
            return self._fetch(req.path, sid, parts[4][: -len(".json")])
        return self._not_found(req.path)

    def _create(self, req: Incoming, account_sid: str, token: str) -> Reply:
        to = req.field("To")
        sender = req.field("From")
        service = req.field("MessagingServiceSid")
        body = req.field("Body")
        if not to:
            return twilio_error(400, 21604, "A 'To' phone number is required.")
        if not sender and not service:
            return twilio_error(400, 21603, "A 'From' phone number is required.")
        if not body:
            return twilio_error(400, 21602, "Message body is required.")
        if len(body) > 1600:
            return twilio_error(
                400, 21617, "The concatenated message body exceeds the 1600 character limit."
            )
        if not E164.match(to) or to in self._invalid:
            return twilio_error(400, 21211, f"The 'To' number {to} is not a valid phone number.")
        callback = req.field("StatusCallback")
        if callback and urlsplit(callback).scheme not in ("http", "https"):
            return twilio_error(400, 21609, f"The StatusCallback URL {callback} is not valid.")
        validity = req.field("ValidityPeriod")
        if validity is not None and not validity.isdigit():
            return twilio_error(400, None, f"Invalid ValidityPeriod: {validity}")
        now = utcnow()
        sid = "SM" + secrets.token_hex(16)
        uri = f"/{API_VERSION}/Accounts/{account_sid}/Messages/{sid}.json"
        message = {
            "account_sid": account_sid,
            "api_version": API_VERSION,
            "body": body,
            "date_created": _rfc2822(now),
            "date_sent": None,
            "date_updated": _rfc2822(now),
            "direction": "outbound-api",
            "error_code": None,
            "error_message": None,
            "from": sender,
            "messaging_service_sid": service,
            "num_media": "0",
            "num_segments": str(segments(body)),
            "price": None,
            "price_unit": "USD",
            "sid": sid,
            "status": "accepted" if service else "queued",
            "subresource_uris": {
                "media": uri.replace(".json", "/Media.json"),
                "feedback": uri.replace(".json", "/Feedback.json"),
            },
            "to": to,
            "uri": uri,
        }
        with self._lock:
            self._order += 1
            self._messages[sid] = {
                "resource": message,
                "created": now,
                "sent": None,
                "order": self._order,
                "token": token,
                "callback": callback,
                "validity_period": int(validity) if validity else None,
                "callbacks": [],
            }
            self._by_to.setdefault(to, []).append(sid)
            generation = self._generation
            executor = self._ensure_executor()
        with contextlib.suppress(RuntimeError):  # RuntimeError: the sandbox is stopping
            executor.submit(self._lifecycle, sid, generation)
        return Reply(201, dict(message), resource_id=sid)

    def _fetch(self, path: str, account_sid: str, sid: str) -> Reply:
        with self._lock:
            record = self._messages.get(sid)
            if record is None or record["resource"]["account_sid"] != account_sid:
                return self._not_found(path)
            return Reply(200, dict(record["resource"]))

    def _list(self, req: Incoming, account_sid: str) -> Reply:
        try:
            page_size = max(1, min(int(req.arg("PageSize") or "50"), 1000))
            page = max(0, int(req.arg("Page") or "0"))
            sent_filters = {
                op: _date_filter(req.arg(name))
                for op, name in (("=", "DateSent"), ("<", "DateSent<"), (">", "DateSent>"))
                if req.arg(name)
            }
        except ValueError as exc:
            return twilio_error(400, None, f"Invalid parameter: {exc}")
        to, sender = req.arg("To"), req.arg("From")
        with self._lock:
            candidates = (
                [self._messages[sid] for sid in self._by_to.get(to, ())]
                if to is not None
                else self._messages.values()
            )
            records = [
                r
                for r in candidates
                if r["resource"]["account_sid"] == account_sid
                and (sender is None or r["resource"]["from"] == sender)
                and _sent_matches(r["sent"], sent_filters)
            ]
            records.sort(key=lambda r: r["order"], reverse=True)
            start = page * page_size
            window = [dict(r["resource"]) for r in records[start : start + page_size]]
            more = start + page_size < len(records)
            next_token = "PA" + records[start + page_size - 1]["resource"]["sid"] if more else None
        base = f"/{API_VERSION}/Accounts/{account_sid}/Messages.json"
        filters = {
            k: v[0]
            for k, v in req.query.items()
            if k in ("To", "From", "DateSent", "DateSent<", "DateSent>")
        }

        def page_uri(number: int, token: str | None = None) -> str:
            args = dict(filters, PageSize=str(page_size), Page=str(number))
            if token:
                args["PageToken"] = token
            return f"{base}?{urlencode(args)}"

        body = {
            "end": start + max(len(window), 1) - 1,
            "first_page_uri": page_uri(0),
            "messages": window,
            "next_page_uri": page_uri(page + 1, next_token) if more else None,
            "page": page,
            "page_size": page_size,
            "previous_page_uri": page_uri(page - 1) if page > 0 else None,
            "start": start,
            "uri": page_uri(page, req.arg("PageToken")),
        }
        return Reply(200, body)

    # -- delivery and status callbacks ---------------------------------------------------------

    def _lifecycle(self, sid: str, generation: int) -> None:
        try:
            with self._lock:
                record = self._messages.get(sid)
                if record is None or generation != self._generation:
                    return
                to = record["resource"]["to"]
            final, code = self._failures.get(to, ("delivered", None))
            if final != "failed":
                if self._stopper.sleep(self._delay) or not self._advance(sid, generation, "sent"):
                    return
                self._callback(sid, generation, "sent", None)
            if self._stopper.sleep(self._delay):
                return
            if self._advance(sid, generation, final, code):
                self._callback(sid, generation, final, code)
        except Exception:  # noqa: BLE001 - a background worker must never take the sandbox down
            return

    def _advance(self, sid: str, generation: int, status: str, code: int | None = None) -> bool:
        now = utcnow()
        with self._lock:
            record = self._messages.get(sid)
            if record is None or generation != self._generation:
                return False
            resource = record["resource"]
            resource["status"] = status
            resource["date_updated"] = _rfc2822(now)
            if resource["from"] is None:
                resource["from"] = SERVICE_SENDER
            if status == "sent":
                record["sent"] = now
                resource["date_sent"] = _rfc2822(now)
            if code is not None:
                resource["error_code"] = code
                resource["error_message"] = ERROR_MESSAGES.get(code, "Delivery failed")
            return True

    def _callback(self, sid: str, generation: int, status: str, code: int | None) -> None:
        with self._lock:
            record = self._messages.get(sid)
            if record is None or not record["callback"]:
                return
            resource = record["resource"]
            url, token = record["callback"], record["token"]
            params = {
                "AccountSid": resource["account_sid"],
                "ApiVersion": API_VERSION,
                "From": resource["from"] or SERVICE_SENDER,
                "MessageSid": sid,
                "MessageStatus": status,
                "SmsSid": sid,
                "SmsStatus": status,
                "To": resource["to"],
            }
            if resource["messaging_service_sid"]:
                params["MessagingServiceSid"] = resource["messaging_service_sid"]
            if code is not None:
                params["ErrorCode"] = str(code)
        outcome = {"status": status, **self._post_status(url, params, token)}
        with self._lock:
            record = self._messages.get(sid)
            if record is not None and generation == self._generation:
                record["callbacks"].append(outcome)

    # -- faults and inspection ----------------------------------------------------------------

    def count(self) -> int:
        """How many posts there are (deleted ones included), without copying them."""
        with self._lock:
            return len(self._messages)

    def posts(self) -> list[dict[str, Any]]:
        with self._lock:
            out = []
            for record in sorted(self._messages.values(), key=lambda r: r["order"]):
                item = dict(record["resource"])
                item.update(
                    deleted=False,
                    status_callback=record["callback"],
                    validity_period=record["validity_period"],
                    callbacks=[dict(c) for c in record["callbacks"]],
                )
                out.append(item)
            return out


def _date_filter(value: str | None) -> tuple[bool, datetime]:
    """(date only?, moment) for a DateSent filter value."""
    assert value is not None  # noqa: S101 (narrows the type: callers pass only present filters)
    return len(value.strip()) == 10, parse_time(value)


def _sent_matches(sent: datetime | None, filters: dict[str, tuple[bool, datetime]]) -> bool:
    if not filters:
        return True
    if sent is None:
        return False
    for op, (date_only, moment) in filters.items():
        left: Any = sent.date() if date_only else sent
        right: Any = moment.date() if date_only else moment
        if op == "=" and left != right:
            return False
        if op == "<" and left > right:
            return False
        if op == ">" and left < right:
            return False
    return True
