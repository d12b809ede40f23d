"""The subset of Twilio Programmable Voice (2010-04-01) that twilio's `client.calls` uses.

Routes: `POST /2010-04-01/Accounts/{sid}/Calls.json` (place a call with inline `Twiml` or a
`Url`), `GET .../Calls.json` (list, newest first; filters `To`, `From`, `Status`, `StartTime`,
`StartTime<`, `StartTime>`; paging `PageSize`, `Page`) and `GET`/`POST .../Calls/{sid}.json`
(fetch; `Status=canceled` for a call not yet answered, `Status=completed` to hang up one in
progress). Auth as for messages (the same account tokens).

A call is answered by a person unless the number is in `call_outcomes`: number -> "answered"
(a person), "machine" (voicemail; with `MachineDetection`, `AnsweredBy` says so), "busy",
"no-answer", "failed" or "canceled" (by the callee's network). After it is placed, a background
worker moves it through `initiated`, `ringing`, `in-progress` and `completed` (or the outcome),
and POSTs to `StatusCallback` each event asked for in `StatusCallbackEvent` (Twilio's default:
`completed` only), signed like Twilio's. Every end state (`completed`, `busy`, `no-answer`,
`failed`, `canceled`) is reported as the `completed` event, with its own `CallStatus`.

What the call said is kept with it: `said`, the `<Say>` texts with their language and voice, in
the order played (a `<Gather>`'s prompts included), and `gather` whether it asked for a digit.
A voicemail (`machine`) with `MachineDetection=DetectMessageEnd` hears the whole message after
the beep; without machine detection it hears it from the start.
"""

from __future__ import annotations

import contextlib
import re
import secrets
import threading
import time
from collections.abc import Mapping
from datetime import datetime
from email.utils import format_datetime
from typing import Any
from urllib.parse import urlencode, urlsplit
from xml.etree import ElementTree

from .core import Incoming, Reply, Stopper, parse_time, utcnow
from .twilio_api import API_VERSION, E164, TwilioResources, twilio_error

OUTCOMES = ("answered", "machine", "busy", "no-answer", "failed", "canceled")
EVENTS = ("initiated", "ringing", "answered", "completed")
END_STATES = ("completed", "busy", "no-answer", "failed", "canceled")
TWIML_MAX = 4000  # characters of inline TwiML Twilio takes (error 32018)
SPOKEN_SECONDS_PER_WORD = 0.4  # the call's duration, roughly, from what it says


def _rfc2822(dt: datetime | None) -> str | None:
    return format_datetime(dt) if dt else None


class TwilioVoiceApi(TwilioResources):
    provider = "voice"
    worker_name = "sandbox-voice"

    def __init__(
        self,
        lock: threading.RLock,
        stopper: Stopper,
        auth_tokens: Mapping[str, str] | None = None,
        invalid_numbers: tuple[str, ...] = ("+15005550001",),
        call_outcomes: Mapping[str, str] | None = None,
        status_delay_s: float = 0.05,
        callback_retries: int = 3,
        callback_timeout_s: float = 2.0,
    ) -> None:
        for number, outcome in (call_outcomes or {}).items():
            if outcome not in OUTCOMES:
                raise ValueError(f"call outcome for {number}: one of {', '.join(OUTCOMES)}")
        self._outcomes = dict(call_outcomes or {})
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
            self._calls: dict[str, dict[str, Any]] = {}
            self._order = 0

    def set_outcome(self, number: str, outcome: str | None) -> None:
        """How calls to `number` placed from now on end (None: a person answers)."""
        if outcome is not None and outcome not in OUTCOMES:
            raise ValueError(f"call outcome: one of {', '.join(OUTCOMES)}")
        with self._lock:
            if outcome is None:
                self._outcomes.pop(number, None)
            else:
                self._outcomes[number] = outcome

    # -- routes -------------------------------------------------------------------------------

    def handle(self, req: Incoming) -> Reply:
        parts = req.path.strip("/").split("/")
        if len(parts) < 4 or parts[0] != API_VERSION or parts[1] != "Accounts":
            return self._not_found(req.path)
        account_sid = parts[2]
        token = self._authenticate(req, account_sid)
        if isinstance(token, Reply):
            return token
        if parts[3:] == ["Calls.json"]:
            if req.method == "POST":
                return self._create(req, account_sid, token)
            if req.method == "GET":
                return self._list(req, account_sid)
        if len(parts) == 5 and parts[3] == "Calls" and parts[4].endswith(".json"):
            sid = parts[4][: -len(".json")]
            if req.method == "GET":
                return self._fetch(req.path, account_sid, sid)
            if req.method == "POST":
                return self._update(req, account_sid, sid)
        return self._not_found(req.path)

    def _create(self, req: Incoming, account_sid: str, token: str) -> Reply:
        to, sender = req.field("To"), req.field("From")
        twiml, url = req.field("Twiml"), req.field("Url")
        if not to:
            return twilio_error(400, 21201, "No 'To' number is specified")
        if not sender:
            return twilio_error(400, 21213, "No 'From' number is specified")
        if not E164.match(to) or to in self._invalid:
            return twilio_error(400, 21211, f"The 'To' number {to} is not a valid phone number.")
        if twiml is None and url is None:
            return twilio_error(400, 21205, "Either Url, Twiml or ApplicationSid is required")
        if url is not None and urlsplit(url).scheme not in ("http", "https"):
            return twilio_error(400, 21205, f"Url is not a valid URL: {url}")
        callback = req.field("StatusCallback")
        if callback and urlsplit(callback).scheme not in ("http", "https"):
            return twilio_error(400, 21609, f"The StatusCallback URL {callback} is not valid.")
        said: list[dict[str, str | None]] = []
        gather = False
        if twiml is not None:
            if len(twiml) > TWIML_MAX:
                return twilio_error(
                    400, 32018, f"Twiml size exceeded maximum allowed value of {TWIML_MAX}"
                )
            try:
                said, gather = _spoken(twiml)
            except ValueError as exc:
                return twilio_error(400, 12100, f"Document parse failure: {exc}")
        events = (req.form or {}).get("StatusCallbackEvent", [])
        unknown = [e for e in events if e not in EVENTS]
        if unknown:
            return twilio_error(400, 21626, f"Invalid StatusCallbackEvent: {', '.join(unknown)}")
        detection = req.field("MachineDetection")
        if detection not in (None, "Enable", "DetectMessageEnd"):
            return twilio_error(400, 21626, f"Invalid MachineDetection: {detection}")
        now = utcnow()
        sid = "CA" + secrets.token_hex(16)
        uri = f"/{API_VERSION}/Accounts/{account_sid}/Calls/{sid}.json"
        call = {
            "account_sid": account_sid,
            "answered_by": None,
            "api_version": API_VERSION,
            "caller_name": None,
            "date_created": _rfc2822(now),
            "date_updated": _rfc2822(now),
            "direction": "outbound-api",
            "duration": None,
            "end_time": None,
            "forwarded_from": None,
            "from": sender,
            "from_formatted": sender,
            "parent_call_sid": None,
            "phone_number_sid": None,
            "price": None,
            "price_unit": "USD",
            "queue_time": "0",
            "sid": sid,
            "start_time": None,
            "status": "queued",
            "subresource_uris": {"notifications": uri.replace(".json", "/Notifications.json")},
            "to": to,
            "to_formatted": to,
            "uri": uri,
        }
        with self._lock:
            self._order += 1
            self._calls[sid] = {
                "resource": call,
                "created": now,
                "started": None,
                "order": self._order,
                "token": token,
                "callback": callback,
                "events": list(events) or ["completed"],
                "detection": detection,
                "twiml": twiml,
                "url": url,
                "said": said,
                "gather": gather,
                "heard": [],
                "callbacks": [],
                "sequence": 0,
                # From its creation to its end, on this process's clock: how many calls of an
                # account were in progress at once (a test of a concurrent-call cap).
                "live": [time.monotonic(), None],
            }
            outcome = self._outcomes.get(to, "answered")
            generation = self._generation
            executor = self._ensure_executor()
        with contextlib.suppress(RuntimeError):  # RuntimeError: the sandbox is stopping
            executor.submit(self._lifecycle, sid, generation, outcome)
        return Reply(201, dict(call), resource_id=sid)

    def _fetch(self, path: str, account_sid: str, sid: str) -> Reply:
        with self._lock:
            record = self._calls.get(sid)
            if record is None or record["resource"]["account_sid"] != account_sid:
                return self._not_found(path)
            return Reply(200, dict(record["resource"]))

    def _update(self, req: Incoming, account_sid: str, sid: str) -> Reply:
        """Cancel a call not yet answered, or hang up one in progress (Twilio's 21220 for a
        call in the wrong state for the change)."""
        wanted = req.field("Status")
        with self._lock:
            record = self._calls.get(sid)
            if record is None or record["resource"]["account_sid"] != account_sid:
                return self._not_found(req.path)
            current = record["resource"]["status"]
            allowed = {"canceled": ("queued", "ringing"), "completed": ("in-progress",)}
            if wanted not in allowed:
                return twilio_error(400, 21218, f"Invalid Status: {wanted}")
            if current not in allowed[wanted]:
                return twilio_error(
                    400, 21220, f"Call is not in a valid state to be {wanted} ({current})"
                )
            generation = self._generation
        self._finish(sid, generation, wanted)
        with self._lock:
            return Reply(200, dict(self._calls[sid]["resource"]), resource_id=sid)

    def _list(self, req: Incoming, account_sid: str) -> Reply:
        try:
            page_size = max(1, min(int(req.arg("PageSize") or "50"), 1000))
            page = max(0, int(req.arg("Page") or "0"))
            started = {
                op: parse_time(value)
                for op, name in (("=", "StartTime"), ("<", "StartTime<"), (">", "StartTime>"))
                if (value := req.arg(name))
            }
        except ValueError as exc:
            return twilio_error(400, None, f"Invalid parameter: {exc}")
        to, sender, status = req.arg("To"), req.arg("From"), req.arg("Status")
        with self._lock:
            records = [
                r
                for r in self._calls.values()
                if r["resource"]["account_sid"] == account_sid
                and to in (None, r["resource"]["to"])
                and sender in (None, r["resource"]["from"])
                and status in (None, r["resource"]["status"])
                and _started_matches(r["started"], started)
            ]
            records.sort(key=lambda r: r["order"], reverse=True)
            start = page * page_size
            window = [dict(r["resource"]) for r in records[start : start + page_size]]
            more = start + page_size < len(records)
        base = f"/{API_VERSION}/Accounts/{account_sid}/Calls.json"
        filters = {k: v[0] for k, v in req.query.items() if k not in ("PageSize", "Page")}

        def page_uri(number: int) -> str:
            return f"{base}?{urlencode(dict(filters, PageSize=str(page_size), Page=str(number)))}"

        return Reply(
            200,
            {
                "calls": window,
                "end": start + max(len(window), 1) - 1,
                "first_page_uri": page_uri(0),
                "next_page_uri": page_uri(page + 1) if more else None,
                "page": page,
                "page_size": page_size,
                "previous_page_uri": page_uri(page - 1) if page > 0 else None,
                "start": start,
                "uri": page_uri(page),
            },
        )

    # -- the call's life and its status callbacks ----------------------------------------------

    def _lifecycle(self, sid: str, generation: int, outcome: str) -> None:
        try:
            if outcome in ("failed", "canceled"):
                self._step(sid, generation, "initiated", event="initiated")
                self._finish(sid, generation, outcome)
                return
            for status in ("initiated", "ringing"):
                if self._stopper.sleep(self._delay) or not self._step(
                    sid, generation, status, event=status
                ):
                    return
            if self._stopper.sleep(self._delay):
                return
            if outcome in ("busy", "no-answer"):
                self._finish(sid, generation, outcome)
                return
            if not self._answer(sid, generation, outcome):
                return
            if self._stopper.sleep(self._delay):
                return
            self._finish(sid, generation, "completed")
        except Exception:  # noqa: BLE001 - a background worker must never take the sandbox down
            return

    def _step(self, sid: str, generation: int, status: str, event: str) -> bool:
        now = utcnow()
        with self._lock:
            record = self._calls.get(sid)
            if record is None or generation != self._generation:
                return False
            resource = record["resource"]
            if resource["status"] in END_STATES:
                return False  # canceled or hung up meanwhile
            resource["status"] = status
            resource["date_updated"] = _rfc2822(now)
        self._callback(sid, generation, event)
        return True

    def _answer(self, sid: str, generation: int, outcome: str) -> bool:
        now = utcnow()
        with self._lock:
            record = self._calls.get(sid)
            if record is None or generation != self._generation:
                return False
            resource = record["resource"]
            if resource["status"] in END_STATES:
                return False
            record["started"] = now
            resource["start_time"] = _rfc2822(now)
            if record["detection"]:
                machine = {"Enable": "machine_start", "DetectMessageEnd": "machine_end_beep"}
                resource["answered_by"] = (
                    machine[record["detection"]] if outcome == "machine" else "human"
                )
            record["heard"] = [dict(s) for s in record["said"]]
        return self._step(sid, generation, "in-progress", event="answered")

    def _finish(self, sid: str, generation: int, status: str) -> None:
        now = utcnow()
        with self._lock:
            record = self._calls.get(sid)
            if record is None or generation != self._generation:
                return
            resource = record["resource"]
            if resource["status"] in END_STATES:
                return
            resource["status"] = status
            resource["date_updated"] = _rfc2822(now)
            resource["end_time"] = _rfc2822(now)
            record["live"][1] = time.monotonic()
            started = record["started"]
            words = sum(len(str(s["text"]).split()) for s in record["heard"])
            seconds = int(words * SPOKEN_SECONDS_PER_WORD) + 1 if started else 0
            resource["duration"] = str(seconds)
        self._callback(sid, generation, "completed")

    def _callback(self, sid: str, generation: int, event: str) -> None:
        with self._lock:
            record = self._calls.get(sid)
            if record is None or not record["callback"] or event not in record["events"]:
                return
            resource = record["resource"]
            url, token = record["callback"], record["token"]
            params = {
                "AccountSid": resource["account_sid"],
                "ApiVersion": API_VERSION,
                "CallSid": sid,
                "CallStatus": resource["status"],
                "CallbackSource": "call-progress-events",
                "Direction": "outbound-api",
                "From": resource["from"],
                "SequenceNumber": str(record["sequence"]),
                "Timestamp": _rfc2822(utcnow()) or "",
                "To": resource["to"],
            }
            record["sequence"] += 1
            if resource["answered_by"]:
                params["AnsweredBy"] = resource["answered_by"]
            if event == "completed":
                params["CallDuration"] = resource["duration"] or "0"
                params["Duration"] = str(-(-int(resource["duration"] or 0) // 60))
        outcome = {
            "event": event,
            "status": params["CallStatus"],
            **self._post_status(url, params, token),
        }
        with self._lock:
            record = self._calls.get(sid)
            if record is not None and generation == self._generation:
                record["callbacks"].append(outcome)

    # -- inspection ---------------------------------------------------------------------------

    def count(self) -> int:
        with self._lock:
            return len(self._calls)

    def posts(self) -> list[dict[str, Any]]:
        """Every call placed, in order, with what it said and what the callee heard."""
        with self._lock:
            out = []
            for record in sorted(self._calls.values(), key=lambda r: r["order"]):
                item = dict(record["resource"])
                item.update(
                    deleted=False,
                    twiml=record["twiml"],
                    url=record["url"],
                    said=[dict(s) for s in record["said"]],
                    gather=record["gather"],
                    heard=[dict(s) for s in record["heard"]],
                    machine_detection=record["detection"],
                    status_callback=record["callback"],
                    status_callback_events=list(record["events"]),
                    callbacks=[dict(c) for c in record["callbacks"]],
                    live=tuple(record["live"]),
                )
                out.append(item)
            return out


_SPOKEN = ("Say", "Gather", "Pause", "Play", "Hangup", "Redirect")


def _spoken(twiml: str) -> tuple[list[dict[str, str | None]], bool]:
    """The `<Say>` texts of a TwiML document in the order played (inside a `<Gather>` too), and
    whether it gathers a digit. ValueError for a document Twilio would not run."""
    if re.search(r"<!DOCTYPE|<!ENTITY", twiml, re.IGNORECASE):
        raise ValueError("a document type declaration is not allowed")
    try:
        root = ElementTree.fromstring(twiml)  # noqa: S314 (no DTD or entities: refused above)
    except ElementTree.ParseError as exc:
        raise ValueError(str(exc)) from None
    if root.tag != "Response":
        raise ValueError(f"the root element is <{root.tag}>, not <Response>")
    said: list[dict[str, str | None]] = []
    gather = False
    for element in root.iter():
        if element is root:
            continue
        if element.tag not in _SPOKEN:
            raise ValueError(f"<{element.tag}> is not a verb this sandbox plays")
        if element.tag == "Gather":
            gather = True
        if element.tag == "Say":
            said.append(
                {
                    "text": "".join(element.itertext()).strip(),
                    "language": element.get("language"),
                    "voice": element.get("voice"),
                    "loop": element.get("loop"),
                }
            )
    return said, gather


def _started_matches(started: datetime | None, filters: dict[str, datetime]) -> bool:
    if not filters:
        return True
    if started is None:
        return False
    for op, moment in filters.items():
        if op == "=" and started.date() != moment.date():
            return False
        if op == "<" and started > moment:
            return False
        if op == ">" and started < moment:
            return False
    return True
