"""Channel adapters: one module per channel (X, Facebook, SMS, web), registered here.

Adapters depend on nothing in `broadcaster/`; the broadcaster reaches them only through this
registry. The adapters themselves arrive with the delivery work; the contract is fixed now.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Protocol


@dataclass(frozen=True)
class Receipt:
    """What the provider said when it accepted a post or a text."""

    provider_id: str
    url: str | None = None
    raw: dict[str, Any] = field(default_factory=dict)


class Outcome(Enum):
    RETRYABLE = "retryable"  # 429, 5xx, connection refused: try again later
    PERMANENT = "permanent"  # bad number, bad credentials: do not try again
    AMBIGUOUS = "ambiguous"  # the request may have arrived: look it up before any resend


class DeliveryError(Exception):
    def __init__(self, outcome: Outcome, detail: str, retry_after: float | None = None):
        super().__init__(detail)
        self.outcome = outcome
        self.retry_after = retry_after


class Adapter(Protocol):
    channel: str

    def send(self, text: str, target: str) -> Receipt: ...

    def lookup(self, target: str, text: str) -> Receipt | None: ...

    def retract(self, receipt: Receipt) -> None: ...


REGISTRY: dict[str, type[Adapter]] = {}


def register(adapter: type[Adapter]) -> type[Adapter]:
    REGISTRY[adapter.channel] = adapter
    return adapter


def adapter_for(channel: str) -> type[Adapter]:
    try:
        return REGISTRY[channel]
    except KeyError:
        raise LookupError(f"no adapter registered for channel {channel!r}") from None
