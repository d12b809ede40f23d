"""Shared pieces of the sandbox: request and reply types, the request log and the fault rules.

Nothing here knows about a particular provider; see `x_api`, `graph_api` and `twilio_api`.
"""

from __future__ import annotations

import json
import random
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

PROVIDERS = ("x", "facebook", "twilio", "voice", "email", "staff")
FAULT_KINDS = ("latency", "status", "rate_limit", "timeout_after_accept", "drop")

# Values under these names are secrets and never reach the request log.
SECRET_NAMES = frozenset(
    {"access_token", "client_secret", "fb_exchange_token", "input_token", "appsecret_proof"}
)
REDACTED = "[redacted]"


def utcnow() -> datetime:
    return datetime.now(UTC)


def iso(dt: datetime) -> str:
    return dt.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def parse_time(value: str) -> datetime:
    """An ISO 8601 timestamp (`Z` or an offset; naive means UTC) or a plain date."""
    value = value.strip()
    dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


@dataclass
class Incoming:
    """One request as a provider handler sees it."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: Mapping[str, str]
    raw_body: bytes = b""
    json: Any = None
    form: dict[str, list[str]] | None = None

    def arg(self, name: str) -> str | None:
        """A query argument, or (for form bodies) a form field; first value wins."""
        if name in self.query:
            return self.query[name][0]
        if self.form and name in self.form:
            return self.form[name][0]
        return None

    def field(self, name: str) -> str | None:
        if self.form and name in self.form:
            return self.form[name][0]
        return None

    def recorded_query(self) -> dict[str, Any]:
        return _flatten(self.query)

    def recorded_body(self) -> Any:
        if self.form:
            return _flatten(self.form)
        if self.json is not None:
            return self.json
        if self.raw_body:
            return self.raw_body.decode("utf-8", "replace")
        return None


def _flatten(values: Mapping[str, list[str]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, items in values.items():
        if key in SECRET_NAMES:
            out[key] = REDACTED
        else:
            out[key] = items[0] if len(items) == 1 else list(items)
    return out


@dataclass
class Reply:
    """What a provider handler answers."""

    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    resource_id: str | None = None
    content_type: str = "application/json; charset=utf-8"

    def payload(self) -> bytes:
        if self.body is None:
            return b""
        if isinstance(self.body, bytes):
            return self.body
        return json.dumps(self.body, ensure_ascii=False).encode("utf-8")


_RULE_KEYS = {
    "provider",
    "fault",
    "count",
    "rate",
    "seed",
    "method",
    "path",
    "status",
    "latency_ms",
    "hold_ms",
    "retry_after_s",
    "code",
    "message",
    "http_status",
}


# Accepted spellings: {"fault": "latency", "ms": 15} and {"fault": "rate_limit", "retry_after": 1}.
_ALIASES = {"ms": "latency_ms", "retry_after": "retry_after_s"}


@dataclass
class FaultRule:
    """One fault rule; see the package docstring for the format."""

    provider: str
    fault: str
    count: int | None = None
    rate: float | None = None
    seed: int = 0
    method: str | None = None
    path: str | None = None
    status: int | None = None
    latency_ms: int = 0
    hold_ms: int = 15_000
    retry_after_s: int = 60
    code: int | None = None
    message: str | None = None
    http_status: int | None = None
    applied: int = 0
    _rng: random.Random = field(init=False, repr=False, compare=False)
    _path_re: re.Pattern[str] | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)  # noqa: S311 (seeded on purpose: faults are reproducible)
        self._path_re = re.compile(self.path) if self.path else None

    @classmethod
    def parse(cls, data: Mapping[str, Any]) -> FaultRule:
        if not isinstance(data, Mapping):
            raise ValueError(f"a fault rule must be an object, not {type(data).__name__}")
        data = {_ALIASES.get(k, k): v for k, v in data.items()}
        unknown = set(data) - _RULE_KEYS
        if unknown:
            raise ValueError(f"unknown fault rule keys: {', '.join(sorted(unknown))}")
        provider = data.get("provider", "*")
        if provider not in (*PROVIDERS, "*"):
            raise ValueError(f"provider must be one of {', '.join(PROVIDERS)} or '*'")
        fault = data.get("fault")
        if fault not in FAULT_KINDS:
            raise ValueError(f"fault must be one of {', '.join(FAULT_KINDS)}")
        kwargs: dict[str, Any] = {"provider": provider, "fault": fault}
        for name in ("count", "seed", "status", "latency_ms", "hold_ms", "retry_after_s", "code"):
            if data.get(name) is not None:
                value = data[name]
                if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                    raise ValueError(f"{name} must be a non-negative integer")
                kwargs[name] = value
        if data.get("http_status") is not None:
            kwargs["http_status"] = _status(data["http_status"], "http_status")
        if data.get("rate") is not None:
            rate = data["rate"]
            if not isinstance(rate, int | float) or not 0 <= rate <= 1:
                raise ValueError("rate must be a number between 0 and 1")
            kwargs["rate"] = float(rate)
        for name in ("method", "path", "message"):
            if data.get(name) is not None:
                if not isinstance(data[name], str):
                    raise ValueError(f"{name} must be a string")
                kwargs[name] = data[name]
        if "method" in kwargs:
            kwargs["method"] = kwargs["method"].upper()
        if "path" in kwargs:
            try:
                re.compile(kwargs["path"])
            except re.error as exc:
                raise ValueError(f"path is not a valid regular expression: {exc}") from None
        if fault == "status":
            kwargs["status"] = _status(data.get("status"), "status")
        if fault == "latency" and not kwargs.get("latency_ms"):
            raise ValueError("a latency rule needs latency_ms > 0")
        return cls(**kwargs)

    def matches(self, provider: str, method: str, path: str) -> bool:
        if self.provider != "*" and self.provider != provider:
            return False
        if self.method and self.method != method:
            return False
        if self._path_re and not self._path_re.search(path):
            return False
        return self.count is None or self.count > 0

    def fire(self) -> bool:
        """Decide (deterministically, given the seed) whether this matching rule applies now."""
        if self.rate is not None and self._rng.random() >= self.rate:
            return False
        if self.count is not None:
            self.count -= 1
        self.applied += 1
        return True

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"provider": self.provider, "fault": self.fault}
        for name in ("count", "rate", "method", "path", "status", "code", "message"):
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        if self.rate is not None:
            out["seed"] = self.seed
        if self.fault == "latency":
            out["latency_ms"] = self.latency_ms
        if self.fault == "timeout_after_accept":
            out["hold_ms"] = self.hold_ms
        if self.fault == "rate_limit":
            out["retry_after_s"] = self.retry_after_s
            if self.http_status is not None:
                out["http_status"] = self.http_status
        out["applied"] = self.applied
        return out


def _status(value: Any, name: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 100 <= value <= 599:
        raise ValueError(f"{name} must be an HTTP status code (100-599)")
    return value


class FaultSet:
    """The active fault rules. Every method is called under the sandbox lock."""

    def __init__(self) -> None:
        self.rules: list[FaultRule] = []

    def replace(self, rules: list[Mapping[str, Any]]) -> None:
        if not isinstance(rules, list):
            raise ValueError("faults must be a JSON list of rules")
        self.rules = [FaultRule.parse(rule) for rule in rules]

    def pick(self, provider: str, method: str, path: str) -> tuple[int, FaultRule | None]:
        """Total latency to add, and the one non-latency rule that applies (first match)."""
        latency = 0
        chosen: FaultRule | None = None
        for rule in self.rules:
            if not rule.matches(provider, method, path):
                continue
            if rule.fault == "latency":
                if rule.fire():
                    latency += rule.latency_ms
            elif chosen is None and rule.fire():
                chosen = rule
        return latency, chosen

    def describe(self) -> list[dict[str, Any]]:
        return [rule.to_dict() for rule in self.rules]


class RequestLog:
    """Every request received, in arrival order. Guarded by the sandbox lock."""

    def __init__(self) -> None:
        self.entries: list[dict[str, Any]] = []

    def add(self, provider: str, incoming: Incoming) -> dict[str, Any]:
        entry = {
            "seq": len(self.entries) + 1,
            "provider": provider,
            "method": incoming.method,
            "path": incoming.path,
            "query": incoming.recorded_query(),
            "body": incoming.recorded_body(),
            "time": iso(utcnow()),
            "status": None,
            "fault": None,
            "resource_id": None,
        }
        self.entries.append(entry)
        return entry


class Stopper:
    """An event that long waits (held responses, callback back-off) can be cut short by."""

    def __init__(self) -> None:
        self.event = threading.Event()

    def sleep(self, seconds: float) -> bool:
        """Sleep; True if the sandbox is stopping."""
        if seconds <= 0:
            return self.event.is_set()
        return self.event.wait(seconds)
