"""A staff chat room for the `apprise` channel: every post Apprise's generic `json://` (or
`form://`) plugin sends to `/_staff/ROOM` is kept.

A sandbox-served apprise account posts to `json://HOST:PORT/_staff/ACCOUNT/LABEL` (the adapter
builds that URL from the sandbox URL), so the tests and the demo can see which of an account's
URLs received what. Faults apply like the other providers' (provider `staff`): `status` answers
that HTTP status, `rate_limit` a 429 with `Retry-After`, `drop` closes the connection, and
`timeout_after_accept` keeps the post and holds the reply.
"""

from __future__ import annotations

import threading
from typing import Any

from .core import FaultRule, Incoming, Reply, iso, utcnow

PREFIX = "/_staff/"


class StaffChatApi:
    def __init__(self, lock: threading.RLock) -> None:
        self._lock = lock
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self._posts: list[dict[str, Any]] = []

    def handle(self, req: Incoming) -> Reply:
        room = req.path[len(PREFIX) :].strip("/")
        if req.method != "POST" or not room:
            return Reply(404, {"error": f"no staff room at {req.method} {req.path}"})
        body = req.json if isinstance(req.json, dict) else None
        if body is None and req.form:
            body = {key: values[0] for key, values in req.form.items()}
        if not body or not isinstance(body.get("message"), str):
            return Reply(400, {"error": "a post is a JSON (or form) object with a message"})
        with self._lock:
            post_id = f"staff-{len(self._posts) + 1}"
            self._posts.append(
                {
                    "id": post_id,
                    "room": room,
                    "title": body.get("title") or "",
                    "message": body["message"],
                    "type": body.get("type") or "",
                    "created_at": iso(utcnow()),
                }
            )
        return Reply(200, {"id": post_id}, resource_id=post_id)

    def fault_reply(self, rule: FaultRule) -> Reply:
        if rule.fault == "rate_limit":
            return Reply(
                rule.http_status or 429,
                {"error": rule.message or "Too many requests"},
                headers={"Retry-After": str(rule.retry_after_s)},
            )
        return Reply(rule.status or 500, {"error": rule.message or "staff chat unavailable"})

    def count(self) -> int:
        with self._lock:
            return len(self._posts)

    def posts(self) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(p) for p in self._posts]
