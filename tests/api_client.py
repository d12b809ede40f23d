"""The JSON API as a client meets it: the real app on a loopback port, called with `requests`,
every response checked against the OpenAPI document (its status documented for the operation,
JSON, and a body that matches the documented schema exactly)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from typing import Any

import pytest
import requests
from pydantic import TypeAdapter
from sqlalchemy import func, select

from broadcaster.core.models import Delivery, LedgerEntry, Message
from broadcaster.web.openapi import OPERATIONS, Error, Operation, document

CLOSURE = {
    "template": "school_closure",
    "variables": {
        "schools": "lincoln-hs,jefferson-es",
        "date": "2026-03-03",
        "reason": "a winter storm",
        "reason.es": "una tormenta invernal",
    },
    "audience": "all",
}
LOCKDOWN = {
    "template": "lockdown",
    "variables": {"school": "lincoln-hs"},
    "audience": "school:lincoln-hs",
    "confirm": True,
}


def _operation(method: str, path: str) -> Operation:
    for op in OPERATIONS:
        pattern = re.sub(r"\{\w+\}", r"[^/]+", op.path)
        if op.method == method.lower() and re.fullmatch(pattern, path.partition("?")[0]):
            return op
    raise AssertionError(f"{method} {path} is not in the OpenAPI document")


@cache
def _adapter(kind: Any) -> TypeAdapter:
    return TypeAdapter(kind)


def conforms(method: str, path: str, response: requests.Response) -> None:
    op = _operation(method, path)
    documented = document()["paths"][op.path][op.method]["responses"]
    assert str(response.status_code) in documented, (response.status_code, response.text)
    assert response.headers["Content-Type"] == "application/json"
    kind = op.response if response.status_code == op.status else Error
    _adapter(kind).validate_json(response.content, strict=True)
    if kind is Error:
        assert "\n" not in response.json()["error"]


@dataclass
class Api:
    url: str

    def __call__(
        self,
        method: str,
        path: str,
        token: str | None = None,
        body: Any = None,
        headers: dict[str, str] | None = None,
        data: bytes | str | None = None,
    ) -> requests.Response:
        sent = dict(headers or {})
        if token is not None:
            sent["Authorization"] = f"Bearer {token}"
        response = requests.request(
            method, f"{self.url}/api/v1{path}", json=body, data=data, headers=sent, timeout=30
        )
        conforms(method, path, response)
        return response


@pytest.fixture
def serve(web_app):
    """Start the web app (see tests/web_server.py) and call its API."""
    return lambda: Api(web_app())


def counts(session_factory) -> tuple[int, int, int]:
    """Messages, ledger entries and deliveries: what a refused request must leave unchanged."""
    with session_factory() as session:
        return tuple(  # type: ignore[return-value]
            session.scalar(select(func.count()).select_from(table))
            for table in (Message, LedgerEntry, Delivery)
        )
