"""The `requests` transport every adapter mounts on its SDK's own session.

`ProviderTransport` is a `requests.adapters.HTTPAdapter` that

- sends requests for the providers' real hosts (api.twitter.com, api.x.com, graph.facebook.com,
  api.twilio.com and its edge/region hosts) to the sandbox URL instead, keeping path and query,
  and in sandbox mode refuses every other host, so a rehearsal can never reach a real provider;
- or, for an account with a configured API base URL (a regional host, an egress proxy), sends
  the providers' hosts there and lets every other request through unchanged;
- applies a default timeout when the SDK passes none (tweepy never passes one);
- remembers the last response it returned, because some SDKs drop what the caller needs to
  classify an error (facebook-sdk loses the HTTP status, twilio the `Retry-After` header).

The SDK code runs unmodified: it calls `session.request(...)` as always, and requests routes the
call through the adapter mounted for the URL's scheme. Nothing is monkeypatched.

This module also holds the error helpers the adapters share.
"""

from __future__ import annotations

import json
import re
import socket
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection
from urllib3.exceptions import (
    ConnectTimeoutError,
    MaxRetryError,
    NewConnectionError,
    ProxyError,
)

from . import AccountConfig, DeliveryError, Outcome

PROVIDER_HOSTS: dict[str, tuple[str, ...]] = {
    "x": ("api.twitter.com", "api.x.com"),
    "facebook": ("graph.facebook.com", "graph-video.facebook.com"),
    "twilio": ("api.twilio.com",),
}
# twilio builds api.{edge}.{region}.twilio.com when an edge or region is configured.
LOOPBACK = ("127.0.0.1", "localhost", "::1")
_TWILIO_EDGE = re.compile(r"^api(\.[a-z0-9-]+){1,2}\.twilio\.com$")


def is_provider_host(host: str) -> bool:
    host = host.lower()
    if any(host in hosts for hosts in PROVIDER_HOSTS.values()):
        return True
    return bool(_TWILIO_EDGE.match(host))


class SandboxRefused(requests.exceptions.ConnectionError):
    """Sandbox mode: a request for a host that is neither a provider nor the sandbox."""


class ProviderTransport(HTTPAdapter):
    def __init__(
        self,
        *,
        timeout: float | tuple[float, float] = 10.0,
        sandbox_url: str | None = None,
        api_base_url: str | None = None,
        **kwargs: Any,
    ) -> None:
        self.timeout = timeout  # before HTTPAdapter's __init__, which builds the pool with it
        super().__init__(**kwargs)
        self.sandbox_url = sandbox_url.rstrip("/") if sandbox_url else None
        # The sandbox wins: a rehearsal must never reach a real provider's host.
        base = self.sandbox_url or (api_base_url.rstrip("/") if api_base_url else None)
        self._base = base
        self._base_host = urlsplit(base).netloc.lower() if base else None
        self.last_response: requests.Response | None = None

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        """Provider sockets give up on unacknowledged data after the request timeout. Without
        this, a request the worker already counted as lost (its link was down) stays in the
        kernel's send queue and reaches the provider when the link returns, after the sweep has
        looked for it, found nothing and sent it again: a second text."""
        option = getattr(socket, "TCP_USER_TIMEOUT", None)  # Linux
        if option is not None:
            limit = max(self.timeout) if isinstance(self.timeout, tuple) else self.timeout
            kwargs["socket_options"] = [
                *HTTPConnection.default_socket_options,
                (socket.IPPROTO_TCP, option, max(1, int(limit * 1000))),
            ]
        super().init_poolmanager(*args, **kwargs)

    def target(self, url: str) -> str:
        """Where a request for `url` really goes."""
        if not self._base:
            return url
        parts = urlsplit(url)
        if parts.netloc.lower() == self._base_host:
            return url
        if not is_provider_host(parts.hostname or ""):
            if not self.sandbox_url:
                return url
            raise SandboxRefused(
                f"sandbox mode: refusing to contact {parts.hostname!r}, which is not a provider"
            )
        rewritten = self._base + (parts.path or "/")
        return f"{rewritten}?{parts.query}" if parts.query else rewritten

    def send(
        self,
        request: requests.PreparedRequest,
        stream: bool = False,
        timeout: float | tuple[float | None, float | None] | None = None,
        verify: bool | str = True,
        cert: Any = None,
        proxies: Any = None,
    ) -> requests.Response:
        if timeout is None:
            timeout = self.timeout
        self.last_response = None
        assert request.url is not None  # noqa: S101 (requests prepares every URL; narrows the type)
        target = self.target(request.url)
        if target != request.url:
            request = request.copy()
            request.url = target
            if self.sandbox_url or urlsplit(target).hostname in LOOPBACK:
                proxies = {}  # the sandbox (or a host on this machine) is local: no proxy
        response = super().send(
            request, stream=stream, timeout=timeout, verify=verify, cert=cert, proxies=proxies
        )
        self.last_response = response
        return response

    # -- what the last response said ------------------------------------------------------------

    @property
    def last_status(self) -> int | None:
        return self.last_response.status_code if self.last_response is not None else None

    def last_header(self, name: str) -> str | None:
        if self.last_response is None:
            return None
        return self.last_response.headers.get(name)

    def last_body(self) -> Any:
        """The last response body: parsed JSON, else text, else None."""
        if self.last_response is None:
            return None
        try:
            return json.loads(self.last_response.content)
        except ValueError:
            return self.last_response.text[:2000] or None


def mount(
    session: requests.Session,
    *,
    sandbox_url: str | None,
    timeout: float | tuple[float, float],
    api_base_url: str | None = None,
    pool_maxsize: int = 4,
) -> ProviderTransport:
    """Mount one transport for both schemes on this session (replacing the SDK's default)."""
    transport = ProviderTransport(
        timeout=timeout,
        sandbox_url=sandbox_url,
        api_base_url=api_base_url,
        pool_maxsize=pool_maxsize,
    )
    session.mount("https://", transport)
    session.mount("http://", transport)
    return transport


def mount_for(session: requests.Session, account: AccountConfig) -> ProviderTransport:
    """The transport an adapter mounts for its account: the sandbox, its API base URL, or the
    provider's own hosts."""
    return mount(
        session,
        sandbox_url=account.sandbox_url,
        api_base_url=account.api_base_url,
        timeout=account.timeout_s,
    )


# -- shared error helpers ------------------------------------------------------------------------


def one_line(text: str, secrets: Iterable[str] = (), limit: int = 300) -> str:
    """Collapse to one line, scrub every secret, and cut to `limit` characters."""
    text = " ".join(str(text).split())
    for secret in sorted(set(secrets), key=len, reverse=True):
        if secret:
            text = text.replace(secret, "[redacted]")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def network_error(
    exc: BaseException, *, channel: str, idempotent: bool, secrets: Iterable[str] = ()
) -> DeliveryError | None:
    """Classify a transport failure, or None if `exc` is not one.

    RETRYABLE when the request never left (refused, DNS, connect timeout, TLS handshake) or when
    the call is idempotent (a lookup, a delete). AMBIGUOUS when a non-idempotent request was sent
    and no complete answer came back (read timeout, connection dropped or reset).
    """
    if not isinstance(exc, requests.RequestException):
        return None
    name = type(exc).__name__
    raw = {"exception": name}
    after_send = Outcome.RETRYABLE if idempotent else Outcome.AMBIGUOUS
    if isinstance(exc, SandboxRefused):
        return DeliveryError(Outcome.PERMANENT, one_line(f"{channel}: {exc}", secrets), raw=raw)
    if isinstance(exc, requests.ConnectTimeout):
        return DeliveryError(
            Outcome.RETRYABLE, f"{channel}: connect timeout (request not sent)", raw=raw
        )
    if isinstance(exc, requests.ReadTimeout):
        return DeliveryError(
            after_send, f"{channel}: no response in time after the request was sent", raw=raw
        )
    if isinstance(exc, requests.exceptions.SSLError | requests.exceptions.ProxyError):
        return DeliveryError(Outcome.RETRYABLE, f"{channel}: {name} (request not sent)", raw=raw)
    if isinstance(exc, requests.ConnectionError):
        reason: Any = exc.args[0] if exc.args else None
        if isinstance(reason, MaxRetryError):
            reason = reason.reason
        if isinstance(reason, NewConnectionError | ConnectTimeoutError | ProxyError):
            # NameResolutionError is a NewConnectionError in urllib3 2.
            dns = "Resolution" in type(reason).__name__
            what = "DNS lookup failed" if dns else "connection refused or host unreachable"
            return DeliveryError(
                Outcome.RETRYABLE, f"{channel}: {what} (request not sent)", raw=raw
            )
        return DeliveryError(
            after_send, f"{channel}: connection dropped after the request was sent", raw=raw
        )
    if isinstance(exc, requests.exceptions.ChunkedEncodingError):
        return DeliveryError(after_send, f"{channel}: response cut off ({name})", raw=raw)
    return DeliveryError(after_send, one_line(f"{channel}: {name}", secrets), raw=raw)


def retry_after_from(value: str | None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds form)."""
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None
