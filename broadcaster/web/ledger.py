"""The ledger's public face, for witnesses (records/witness.py) and anyone who checks:

- `/ledger/checkpoint`: the latest signed checkpoint (text/plain, a C2SP signed note)
- `/ledger/key`: the log's current public key (a verifier key line); `/ledger/key/history`:
  every key, oldest first, with the handover that introduced each (JSON lines, the same records
  as the `.pub-history` file beside the key)
- `/ledger/checkpoints.atom`: an Atom feed of the latest checkpoints
- `/ledger/consistency?from=N&to=M`: a consistency proof between tree sizes N and M (JSON,
  base64 hashes)

No sign-in: all of it is public by design, and none of it holds a secret or personal data.
"""

from __future__ import annotations

import base64

from feedgen.feed import FeedGenerator
from flask import Blueprint, Response, jsonify, request

from broadcaster.core import ledger_tree
from broadcaster.core.wording import count
from broadcaster.records import checkpoints, signing
from broadcaster.web import context
from broadcaster.web.public import absolute_url

ledger_site = Blueprint("ledger", __name__)

TEXT = "text/plain; charset=utf-8"
# Witnesses poll; a checkpoint a minute old is as good as a new one to them.
CACHE_CONTROL = "public, max-age=30"
FEED_ENTRIES = 50
MAX_NUMBER_DIGITS = 12


def _text(body: str, status: int = 200) -> Response:
    response = Response(body, status=status, content_type=TEXT)
    if status == 200:
        response.headers["Cache-Control"] = CACHE_CONTROL
    return response


def _bad(problem: str) -> Response:
    response = jsonify(error=problem)
    response.status_code = 400
    return response


@ledger_site.get("/ledger/checkpoint")
def checkpoint() -> Response:
    with context.reading() as session:
        latest = checkpoints.latest(session)
    if latest is None:
        return _text("no checkpoint has been signed yet\n", 404)
    return _text(latest.note)


@ledger_site.get("/ledger/key")
def key() -> Response:
    with context.reading() as session:
        records = signing.key_records(session)
    if not records:
        return _text("no signing key yet\n", 404)
    return _text(records[-1].verifier_key + "\n")


@ledger_site.get("/ledger/key/history")
def key_history() -> Response:
    with context.reading() as session:
        records = signing.key_records(session)
    return _text("".join(r.line() for r in records))


@ledger_site.get("/ledger/checkpoints.atom")
def checkpoints_feed() -> Response:
    with context.reading() as session:
        recent = checkpoints.recent(session, FEED_ENTRIES)
    info = context.district().district
    fg = FeedGenerator()
    fg.id(absolute_url("ledger.checkpoints_feed"))
    fg.title(f"{info.name}: ledger checkpoints")
    fg.author({"name": info.name})
    fg.link(href=absolute_url("ledger.checkpoints_feed"), rel="self")
    fg.link(href=absolute_url("ledger.checkpoint"), rel="alternate", type="text/plain")
    fg.language("en")
    fg.updated(recent[0].signed_at if recent else "1970-01-01T00:00:00Z")
    for item in reversed(recent):  # feedgen prepends: the newest ends up first
        entry = fg.add_entry()
        entry.id(f"{absolute_url('ledger.checkpoint')}#{item.size}")
        entry.title(
            f"Checkpoint: {count(item.size, 'entry', 'entries')}, signed by key {item.key_id}"
        )
        entry.updated(item.signed_at)
        entry.published(item.signed_at)
        entry.content(item.note, type="text")
    response = Response(fg.atom_str(pretty=True), mimetype="application/atom+xml")
    response.headers["Cache-Control"] = CACHE_CONTROL
    return response


class _BadQuery(ValueError):
    pass


def _size(name: str) -> int:
    """The query's `name` as a tree size (_BadQuery: the one-line problem with it)."""
    raw = request.args.get(name)
    if raw is None:
        raise _BadQuery(f"give {name}=N (a tree size)")
    if not raw.isascii() or not raw.isdigit() or len(raw) > MAX_NUMBER_DIGITS:
        raise _BadQuery(f"{name} must be a whole number, not {raw[:20]!r}")
    return int(raw)


@ledger_site.get("/ledger/consistency")
def consistency() -> Response:
    try:
        old, new = _size("from"), _size("to")
    except _BadQuery as exc:
        return _bad(str(exc))
    with context.reading() as session:
        size = ledger_tree.tree_size(session)
        if not 0 < old <= new <= size:
            return _bad(f"sizes must satisfy 0 < from <= to <= {size} (the tree's size)")
        proof = ledger_tree.consistency_proof(session, old, new)
    response = jsonify(
        {
            "from": old,
            "to": new,
            "proof": [base64.b64encode(h).decode("ascii") for h in proof],
        }
    )
    response.headers["Cache-Control"] = "public, max-age=86400"  # a proof never changes
    return response
