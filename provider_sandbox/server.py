"""The sandbox HTTP server: routing, the request log, fault injection and the control endpoints."""

from __future__ import annotations

import contextlib
import copy
import json
import re
import socket
import threading
import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from .core import PROVIDERS, FaultSet, Incoming, Reply, RequestLog, Stopper
from .graph_api import GraphApi
from .smtp_api import DEFAULT_MAX_BYTES, SmtpApi
from .staff_chat import PREFIX as STAFF_PREFIX
from .staff_chat import StaffChatApi
from .twilio_api import DEFAULT_INVALID, TwilioApi
from .twilio_voice import TwilioVoiceApi
from .x_api import XApi

CONTROL_PREFIX = "/_sandbox/"
_GRAPH_PATH = re.compile(r"^/v\d+\.\d+(/|$)")
_CALLS_PATH = re.compile(r"^/2010-04-01/Accounts/[^/]+/Calls(\.json$|/)")


def provider_for(path: str) -> str | None:
    if path.startswith("/2/"):
        return "x"
    if _CALLS_PATH.match(path):
        return "voice"
    if path.startswith("/2010-04-01/"):
        return "twilio"
    if _GRAPH_PATH.match(path):
        return "facebook"
    if path.startswith(STAFF_PREFIX):
        return "staff"
    return None


class Sandbox:
    """A local HTTP server impersonating the X API v2, the Graph API and the Twilio REST API.

    `twilio_auth_tokens`: account SID -> auth token (None: any non-empty token is accepted).
    `x_accounts`: access token -> {"id", "username", "name", "consumer_key", "consumer_secret",
    "access_token_secret"} (all optional; with both secrets the OAuth signature is verified).
    None accepts any well-formed OAuth 1.0a header.
    `facebook_page_tokens`: page access token -> page id (None: any token for any page).
    `twilio_invalid_numbers`: numbers answered with error 21211.
    `twilio_delivery_failures`: number -> ("undelivered" | "failed", error code).
    `twilio_call_outcomes`: number -> how a call to it ends ("answered", "machine", "busy",
    "no-answer", "failed", "canceled"; see twilio_voice). Calls use the same account tokens.
    `smtp_port`: the SMTP server's port (0: any free one; `smtp_address()` says which).
    `smtp_credentials`: SMTP user name -> password (None: any non-empty pair is accepted).
    `smtp_refused_recipients`: address -> (SMTP code, text) its RCPT TO is answered with.
    `smtp_max_message_bytes`: larger messages are refused with 552.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        twilio_auth_tokens: Mapping[str, str] | None = None,
        *,
        x_accounts: Mapping[str, Mapping[str, str]] | None = None,
        facebook_page_tokens: Mapping[str, str] | None = None,
        twilio_invalid_numbers: Iterable[str] = DEFAULT_INVALID,
        twilio_delivery_failures: Mapping[str, tuple[str, int]] | None = None,
        twilio_status_delay_s: float = 0.05,
        callback_retries: int = 3,
        callback_timeout_s: float = 2.0,
        x_duplicate_window_s: float = 86_400,
        twilio_call_outcomes: Mapping[str, str] | None = None,
        smtp_port: int = 0,
        smtp_credentials: Mapping[str, str] | None = None,
        smtp_refused_recipients: Mapping[str, tuple[int, str]] | None = None,
        smtp_max_message_bytes: int = DEFAULT_MAX_BYTES,
    ) -> None:
        self.host = host
        self.port = port
        self._lock = threading.RLock()
        self._stopper = Stopper()
        self._log = RequestLog()
        self._faults = FaultSet()
        self._apis: dict[str, Any] = {
            "x": XApi(self._lock, x_accounts, x_duplicate_window_s),
            "facebook": GraphApi(self._lock, facebook_page_tokens),
            "twilio": TwilioApi(
                self._lock,
                self._stopper,
                twilio_auth_tokens,
                twilio_invalid_numbers,
                twilio_delivery_failures,
                twilio_status_delay_s,
                callback_retries,
                callback_timeout_s,
            ),
            "voice": TwilioVoiceApi(
                self._lock,
                self._stopper,
                twilio_auth_tokens,
                tuple(twilio_invalid_numbers),
                twilio_call_outcomes,
                twilio_status_delay_s,
                callback_retries,
                callback_timeout_s,
            ),
            # E-mail has its own port (SMTP, not HTTP) but this log, these rules and this lock.
            "email": SmtpApi(
                self._lock,
                host=host,
                port=smtp_port,
                credentials=smtp_credentials,
                refused_recipients=smtp_refused_recipients,
                max_message_bytes=smtp_max_message_bytes,
                state=lambda: (self._log, self._faults),
            ),
            # Staff chat rooms: what Apprise's json:// and form:// plugins post (staff_chat).
            "staff": StaffChatApi(self._lock),
        }
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self) -> Sandbox:
        if self._server is not None:
            return self
        self._stopper.event.clear()
        self._apis["email"].start()
        try:
            self._server = _Server((self.host, self.port), _Handler)
        except OSError:
            self._apis["email"].stop()
            raise
        self._server.sandbox = self
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"provider-sandbox:{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        """Run in the foreground (used by `python -m provider_sandbox`)."""
        self.start()
        thread = self._thread
        assert thread is not None  # noqa: S101 (start() just set it; narrows the type)
        try:
            while thread.is_alive():
                thread.join(0.5)
        finally:
            self.stop()

    def stop(self) -> None:
        self._stopper.event.set()
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None
        self._apis["twilio"].stop()
        self._apis["voice"].stop()
        self._apis["email"].stop()

    def __enter__(self) -> Sandbox:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    # -- inspection and control ---------------------------------------------------------------

    def requests(self, provider: str | None = None) -> list[dict[str, Any]]:
        with self._lock:
            entries = [e for e in self._log.entries if provider in (None, e["provider"])]
            return copy.deepcopy(entries)

    def posts(self, provider: str) -> list[dict[str, Any]]:
        if provider not in PROVIDERS:
            raise ValueError(f"provider must be one of {', '.join(PROVIDERS)}")
        return copy.deepcopy(self._apis[provider].posts())

    def post_count(self, provider: str) -> int:
        """len(posts(provider)), cheaply: a poll that copies every post slows the sandbox it
        watches, the more the more there are."""
        if provider not in PROVIDERS:
            raise ValueError(f"provider must be one of {', '.join(PROVIDERS)}")
        return self._apis[provider].count()

    def smtp_address(self) -> dict[str, Any]:
        """Where the SMTP server listens: host, port, and the certificate STARTTLS presents."""
        return self._apis["email"].address()

    def smtp_messages(self, to: str | None = None) -> list[dict[str, Any]]:
        """The e-mails kept (to one recipient, when `to` is given), oldest first."""
        return self._apis["email"].messages(to)

    def smtp_raw(self, message_id: str) -> bytes | None:
        """A kept e-mail's bytes exactly as they arrived."""
        return self._apis["email"].raw(message_id)

    def set_call_outcome(self, number: str, outcome: str | None) -> None:
        """How calls to `number` placed from now on end (None: a person answers)."""
        self._apis["voice"].set_outcome(number, outcome)

    def set_faults(self, rules: list[Mapping[str, Any]]) -> None:
        """Replace the active fault rules (raises ValueError on an invalid rule)."""
        with self._lock:
            self._faults.replace(list(rules))

    def faults(self) -> list[dict[str, Any]]:
        with self._lock:
            return self._faults.describe()

    def reset(self) -> None:
        """Forget every request, post, message and fault rule."""
        with self._lock:
            self._log = RequestLog()
            self._faults = FaultSet()
            for api in self._apis.values():
                api.reset()

    # -- request handling (called from the server's worker threads) ---------------------------

    def _control(self, method: str, path: str, query: dict[str, list[str]], body: Any) -> Reply:
        name = path[len(CONTROL_PREFIX) :].strip("/")
        provider = query.get("provider", [None])[0]
        try:
            if method == "GET" and name == "requests":
                return Reply(200, self.requests(provider))
            if method == "GET" and name == "posts":
                if provider:
                    return Reply(200, self.posts(provider))
                return Reply(200, {p: self.posts(p) for p in PROVIDERS})
            if method == "GET" and name == "faults":
                return Reply(200, self.faults())
            if method == "POST" and name == "faults":
                self.set_faults(body if isinstance(body, list) else [body] if body else [])
                return Reply(200, self.faults())
            if method == "POST" and name == "call-outcomes":
                if not isinstance(body, dict):
                    raise ValueError("call-outcomes takes an object: number -> outcome or null")
                for number, outcome in body.items():
                    self.set_call_outcome(number, outcome)
                return Reply(200, {"set": len(body)})
            if method == "POST" and name == "reset":
                self.reset()
                return Reply(200, {"reset": True})
            if method == "GET" and name == "smtp":
                return Reply(200, self.smtp_address())
            if method == "GET" and name == "smtp/messages":
                return Reply(200, self.smtp_messages(query.get("to", [None])[0]))
            if method == "GET" and name == "health":
                return Reply(200, {"ok": True})
        except ValueError as exc:
            return Reply(400, {"error": str(exc)})
        return Reply(404, {"error": f"no control endpoint {method} {path}"})

    def _dispatch(self, incoming: Incoming) -> tuple[str, Reply | None, float]:
        """Decide what to do: ("reply", reply, 0), ("drop", None, 0) or ("hold", reply, s)."""
        provider = provider_for(incoming.path)
        if provider is None:
            with self._lock:
                entry = self._log.add("unknown", incoming)
                entry["status"] = 404
            return "reply", Reply(404, {"error": f"no provider serves {incoming.path}"}), 0
        api = self._apis[provider]
        with self._lock:
            entry = self._log.add(provider, incoming)
            latency_ms, rule = self._faults.pick(provider, incoming.method, incoming.path)
            if latency_ms:
                entry["latency_ms"] = latency_ms
            if rule is not None:
                entry["fault"] = rule.fault
        if latency_ms and self._stopper.sleep(latency_ms / 1000):
            return "drop", None, 0
        if rule is not None and rule.fault == "drop":
            return "drop", None, 0
        if rule is not None and rule.fault in ("status", "rate_limit"):
            reply = api.fault_reply(rule)
        else:
            reply = api.handle(incoming)
        with self._lock:
            entry["status"] = reply.status
            entry["resource_id"] = reply.resource_id
        if rule is not None and rule.fault == "timeout_after_accept":
            return "hold", reply, rule.hold_ms / 1000
        return "reply", reply, 0


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256
    sandbox: Sandbox


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "provider-sandbox/1.0"
    # Headers and body go out in two writes; without TCP_NODELAY every keep-alive response
    # waits for the client's delayed ACK (~40 ms).
    disable_nagle_algorithm = True
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the stdlib's name
        pass

    def do_GET(self) -> None:  # noqa: N802 - the stdlib's naming
        self._handle()

    do_POST = do_DELETE = do_PUT = do_PATCH = do_GET  # noqa: N815

    def _handle(self) -> None:
        sandbox = self.server.sandbox
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length > 0 else b""
        parts = urlsplit(self.path)
        query = parse_qs(parts.query, keep_blank_values=True)
        content_type = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        parsed_json: Any = None
        form: dict[str, list[str]] | None = None
        if content_type == "application/x-www-form-urlencoded":
            form = parse_qs(raw.decode("utf-8", "replace"), keep_blank_values=True)
        elif raw:
            try:
                parsed_json = json.loads(raw)
            except ValueError:
                parsed_json = None
        if parts.path.startswith(CONTROL_PREFIX):
            self._send(sandbox._control(self.command, parts.path, query, parsed_json))
            return
        incoming = Incoming(self.command, parts.path, query, self.headers, raw, parsed_json, form)
        action, reply, hold_s = sandbox._dispatch(incoming)
        if action == "drop":
            self._drop()
            return
        assert reply is not None  # noqa: S101 (only a drop has no reply, handled above)
        if action == "hold":
            # The post exists; the client gives up waiting long before we answer.
            self.close_connection = True
            if sandbox._stopper.sleep(hold_s):
                self._drop()
                return
        self._send(reply)

    def _send(self, reply: Reply) -> None:
        payload = reply.payload()
        try:
            self.send_response(reply.status)
            if payload:
                self.send_header("Content-Type", reply.content_type)
            self.send_header("Content-Length", str(len(payload)))
            for name, value in reply.headers.items():
                self.send_header(name, value)
            if self.close_connection:
                self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(payload)
            self.wfile.flush()
        except OSError:  # the client went away (e.g. after its timeout)
            self.close_connection = True

    def _drop(self) -> None:
        """Close the connection without a byte of response."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)


class RemoteSandbox:
    """Inspect and steer a sandbox running in another process, over its control endpoints."""

    def __init__(self, url: str, timeout_s: float = 10.0) -> None:
        self.url = url.rstrip("/")
        self._timeout = timeout_s
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def _call(self, method: str, name: str, body: Any = None, provider: str | None = None) -> Any:
        url = f"{self.url}{CONTROL_PREFIX}{name}"
        if provider:
            url += f"?provider={provider}"
        data = json.dumps(body).encode() if body is not None else None
        # The sandbox's own control endpoint, given as http(s) by whoever started it.
        request = urllib.request.Request(url, data=data, method=method)  # noqa: S310
        if data is not None:
            request.add_header("Content-Type", "application/json")
        try:
            with self._opener.open(request, timeout=self._timeout) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as exc:
            detail = json.loads(exc.read() or b"{}").get("error", str(exc))
            raise ValueError(detail) from None

    def requests(self, provider: str | None = None) -> list[dict[str, Any]]:
        return self._call("GET", "requests", provider=provider)

    def posts(self, provider: str) -> list[dict[str, Any]]:
        return self._call("GET", "posts", provider=provider)

    def set_call_outcome(self, number: str, outcome: str | None) -> None:
        """How calls to `number` placed from now on end (None: a person answers)."""
        self._call("POST", "call-outcomes", {number: outcome})

    def set_faults(self, rules: list[Mapping[str, Any]]) -> None:
        self._call("POST", "faults", list(rules))

    def faults(self) -> list[dict[str, Any]]:
        return self._call("GET", "faults")

    def reset(self) -> None:
        self._call("POST", "reset", {})

    def smtp_address(self) -> dict[str, Any]:
        return self._call("GET", "smtp")
