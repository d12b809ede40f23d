"""Staff channels end to end: a message with the `apprise` channel, composed, approved and posted by
real Celery workers through the Apprise library (its generic json:// plugin) to the sandbox's
staff chat; and the notice approvers get the moment a message waits for them.

The staff account here holds its URLs the way a district's does: one environment variable per
URL, its key the label the records show. The URLs point at the sandbox's staff chat over loopback
and carry a made-up token, so the tests can look for it everywhere it must not be."""

from __future__ import annotations

import json
from pathlib import Path

from sqlalchemy import func, select, update

from broadcaster.core import db, ledger
from broadcaster.core.config import SAMPLE_CONFIG, SAMPLE_DISTRICT, load_district
from broadcaster.core.models import (
    Delivery,
    LedgerEntry,
    LedgerPayload,
    User,
    WorkerHeartbeat,
    utcnow,
)
from broadcaster.delivery import approvals
from broadcaster.delivery.sending import MAX_ATTEMPTS
from tests.conftest import CLOSURE_VARS, ON_POSTGRESQL

TOKEN = "T0KEN-s3cr3t-7f1d"  # noqa: S105 (made up: what must never show)
LABELS = ("principals", "transport")
BEN_PHONE = "+19515550150"
ANA_PHONE = "+19515550151"
PUBLIC_URL = "https://alerts.riversideusd.example"


def room(label: str) -> str:
    return f"{label}-{TOKEN}"


def staff_district(run, tmp_path: Path, sandbox_url: str, notify: bool) -> Path:
    """The sample district whose staff-chat account holds two URLs from credential variables
    (notifying approvers or not); with `notify`, its SMS account texts approvers too, and ben
    (approver) and ana (author only) have registered phones."""
    text = SAMPLE_CONFIG.read_text(encoding="utf-8")
    text = text.replace('roster = "roster.csv"', f'roster = "{SAMPLE_DISTRICT / "roster.csv"}"')
    variables = ", ".join(f'{label} = "STAFF_{label.upper()}_URL"' for label in LABELS)
    notice = "notify_approvals = true\n" if notify else ""
    text = text.replace(
        'settings = { labels = "principals transport" }\n',
        f"credentials_env = {{ {variables} }}\n{notice}",
        1,
    )
    if notify:
        text = text.replace(
            'sender = "short_code"\n', 'sender = "short_code"\nnotify_approvals = true\n', 1
        )
        text = text.replace(
            'roles = ["approver"]\n', f'roles = ["approver"]\nphone = "{BEN_PHONE}"\n', 1
        )
        text = text.replace(
            'roles = ["author"]\n', f'roles = ["author"]\nphone = "{ANA_PHONE}"\n', 1
        )
    config = tmp_path / "district.toml"
    config.write_text(text, encoding="utf-8")
    district = load_district(config)
    staff = next(a for a in district.accounts if a.channel == "apprise")
    assert staff.staff_labels == list(LABELS) and staff.notify_approvals is notify
    host = sandbox_url.split("://", 1)[1].rstrip("/")
    for label in LABELS:
        run.env[f"STAFF_{label.upper()}_URL"] = f"json://{host}/_staff/{room(label)}"
    run.env["BROADCASTER_CONFIG"] = str(config)
    return config


def compose_for_staff(run, tokens, channels: str = "apprise") -> dict:
    args = ["compose", "school_closure", "--as", "ana", *CLOSURE_VARS, "--channels", channels]
    return run.json(*args, token=tokens["ana"])


def approve(run, tokens, draft: dict) -> None:
    mid = str(draft["id"])
    assert run("submit", mid, "--as", "ana", token=tokens["ana"]).exit_code == 0
    result = run("approve", mid, "--as", "ben", "--ack-warnings", token=tokens["ben"])
    assert result.exit_code == 0, result.output


def staff_rows(run, message_id: int) -> dict[str, Delivery]:
    with db.session_scope(run.env["BROADCASTER_DATABASE_URL"]) as session:
        rows = session.scalars(
            select(Delivery).where(Delivery.message_id == message_id, Delivery.channel == "apprise")
        ).all()
        session.expunge_all()
    return {r.recipient: r for r in rows}


def message_posts(sandbox, rendered: str) -> dict[str, list[dict]]:
    """The staff chat's posts of the message (not notices), by room."""
    title = rendered.partition("\n\n")[0]
    out: dict[str, list[dict]] = {}
    for post in sandbox.posts("staff"):
        if post["title"] == title:
            out.setdefault(post["room"], []).append(post)
    return out


@ON_POSTGRESQL
def test_each_url_gets_the_staff_rendition_once(stack, run, tokens, tmp_path):
    staff_district(run, tmp_path, stack.sandbox.url, notify=False)
    draft = compose_for_staff(run, tokens)
    rendered = next(r["text"] for r in draft["renditions"] if r["channel"] == "apprise")
    assert rendered.startswith("Riverside USD: School closure: ")
    approve(run, tokens, draft)
    rows = staff_rows(run, draft["id"])
    assert sorted(rows) == sorted(LABELS)  # one delivery per URL, named by its label
    stack.start_worker()
    view = stack.wait_done(draft["id"])
    assert view["state"] == "sent", view
    assert view["deliveries"]["apprise"]["sent"] == len(LABELS)
    posts = message_posts(stack.sandbox, rendered)
    assert sorted(posts) == sorted(room(label) for label in LABELS)
    for label in LABELS:
        [post] = posts[room(label)]  # once each
        title, _, body = rendered.partition("\n\n")
        assert post["title"] == title
        assert post["message"].startswith(body.split("\n")[0])
        assert "Escuelas" in post["message"] or "escuelas" in post["message"]  # both languages
        row = staff_rows(run, draft["id"])[label]
        assert row.status == "sent" and row.attempts == 1
        assert (row.provider_id or "").startswith("apprise-")
    assert stack.sandbox.posts("twilio") == []  # no approver texts: notify_approvals is off
    assert run("records", "verify").exit_code == 0


@ON_POSTGRESQL
def test_a_failing_url_is_retried_then_failed_masked_and_the_other_still_goes(
    stack, run, tokens, tmp_path
):
    """The transport URL always answers 503; the principals URL twice, then takes the post.
    The transport delivery is started at its last attempt (its earlier ones set in the row), so
    the test does not wait out minutes of back-off."""
    staff_district(run, tmp_path, stack.sandbox.url, notify=False)
    stack.sandbox.set_faults(
        [
            {"provider": "staff", "fault": "status", "status": 503, "path": room("transport")},
            {
                "provider": "staff",
                "fault": "status",
                "status": 502,
                "path": room("principals"),
                "count": 2,
            },
        ]
    )
    draft = compose_for_staff(run, tokens)
    rendered = next(r["text"] for r in draft["renditions"] if r["channel"] == "apprise")
    approve(run, tokens, draft)
    with db.session_scope(run.env["BROADCASTER_DATABASE_URL"]) as session:
        session.execute(
            update(Delivery)
            .where(Delivery.message_id == draft["id"], Delivery.recipient == "transport")
            .values(attempts=MAX_ATTEMPTS - 1)
        )
    stack.start_worker()
    view = stack.wait_done(draft["id"])
    assert view["state"] == "partially_sent", view
    rows = staff_rows(run, draft["id"])
    assert rows["principals"].status == "sent" and rows["principals"].attempts == 3
    assert list(message_posts(stack.sandbox, rendered)) == [room("principals")]
    failed = rows["transport"]
    assert failed.status == "failed" and failed.attempts == MAX_ATTEMPTS
    assert failed.error is not None
    assert "transport: json://••• not sent" in failed.error and "503" in failed.error
    refused = [r for r in stack.sandbox.requests("staff") if r["status"] in (502, 503)]
    assert len(refused) == 3

    # The URLs (and their token) are nowhere: not in the rows, the ledger, the status output,
    # the worker's log or the records export's tables.
    host = stack.sandbox.url.split("://", 1)[1]
    status = run("status", str(draft["id"]), "--json").output
    with db.session_scope(run.env["BROADCASTER_DATABASE_URL"]) as session:
        ledger = json.dumps(session.scalars(select(LedgerPayload.body)).all())
        deliveries = json.dumps(
            [
                {c.key: getattr(d, c.key) for c in Delivery.__table__.columns}
                for d in session.scalars(select(Delivery)).all()
            ],
            default=str,
        )
    logs = "".join(p.read_text() for p in tmp_path.glob("worker-*.log"))
    for where in (status, ledger, deliveries, logs):
        assert TOKEN not in where
        assert f"{host}/_staff" not in where


@ON_POSTGRESQL
def test_a_submission_notifies_the_approvers_by_staff_chat_and_text(stack, run, tokens, tmp_path):
    staff_district(run, tmp_path, stack.sandbox.url, notify=True)
    run.env["BROADCASTER_PUBLIC_URL"] = PUBLIC_URL
    draft = compose_for_staff(run, tokens, channels="x,web")
    mid = str(draft["id"])
    # A worker is up first, as in a deployment: a notice that waits longer than
    # BROADCASTER_REQUEUE_AFTER (4 s here) for a worker to start is queued again by the sweep.
    stack.start_worker()
    stack.wait_for(lambda: _worker_up(run), timeout=90)
    assert run("submit", mid, "--as", "ana", token=tokens["ana"]).exit_code == 0
    expected = (
        f"Waiting for your approval: School closure (message {mid}) by ana. "
        f"{PUBLIC_URL}/console/messages/{mid}"
    )

    def notices() -> list[dict]:
        return [p for p in stack.sandbox.posts("staff") if p["message"] == expected]

    stack.wait_for(lambda: len(notices()) == len(LABELS) and stack.sandbox.posts("twilio"))
    assert sorted(p["room"] for p in notices()) == sorted(room(label) for label in LABELS)
    texts = stack.sandbox.posts("twilio")
    assert [(t["to"], t["body"]) for t in texts] == [(BEN_PHONE, expected)]
    # ana registered a phone but is no approver (and wrote it): she is not texted.
    assert all(t["to"] != ANA_PHONE for t in texts)
    with db.session_scope(run.env["BROADCASTER_DATABASE_URL"]) as session:
        entries = {e.event: payload for e, payload in ledger.entries_for(session, draft["id"])}
    assert entries["approval.notice_queued"]["targets"] == [
        "apprise:staff-chat:principals",
        "apprise:staff-chat:transport",
        "sms:district-sms:ben",
    ]
    stack.wait_for(lambda: _notified(run, draft["id"]) is not None)
    assert _notified(run, draft["id"])["sent"] == entries["approval.notice_queued"]["targets"]
    ledger_text = json.dumps(list(entries.values()))
    assert BEN_PHONE not in ledger_text and TOKEN not in ledger_text
    # Nothing of the message itself went to staff yet: it waits.
    assert run.json("status", mid)["state"] == "submitted"


@ON_POSTGRESQL
def test_a_notice_the_broker_lost_is_queued_again_by_the_sweep(stack, run, tokens, tmp_path):
    """The broker is down when the message is submitted: the submission stands, and once a
    worker runs, its sweep queues the notice again (after `requeue_after`) and it is sent."""
    staff_district(run, tmp_path, stack.sandbox.url, notify=True)
    draft = compose_for_staff(run, tokens, channels="web")
    mid = str(draft["id"])
    broker = run.env["BROADCASTER_BROKER_URL"]
    run.env["BROADCASTER_BROKER_URL"] = "redis://127.0.0.1:9/0"  # nothing listens there
    assert run("submit", mid, "--as", "ana", token=tokens["ana"]).exit_code == 0
    run.env["BROADCASTER_BROKER_URL"] = broker
    stack.start_worker()
    stack.wait_for(lambda: _notified(run, draft["id"]) is not None, timeout=90)
    assert sorted(_notified(run, draft["id"])["sent"]) == [
        "apprise:staff-chat:principals",
        "apprise:staff-chat:transport",
        "sms:district-sms:ben",
    ]
    assert [t["to"] for t in stack.sandbox.posts("twilio")] == [BEN_PHONE]
    with db.session_scope(run.env["BROADCASTER_DATABASE_URL"]) as session:
        queued = ledger.entries_for(session, draft["id"], ("approval.notice_queued",))
    assert [payload.get("again") for _, payload in queued] == [None, "never ran"]


def _worker_up(run) -> bool:
    """A worker has said it is alive (its heartbeat row): it takes tasks from now on."""
    with db.session_scope(run.env["BROADCASTER_DATABASE_URL"]) as session:
        return session.scalar(select(func.count()).select_from(WorkerHeartbeat)) > 0


def _notified(run, message_id: int) -> dict | None:
    with db.session_scope(run.env["BROADCASTER_DATABASE_URL"]) as session:
        found = ledger.entries_for(session, message_id, ("approval.notified",))
    return found[0][1] if found else None


def test_no_notice_without_notify_approvals(run, tokens, tmp_path):
    """A district whose accounts do not notify approvers records no notice."""
    config = staff_district(run, tmp_path, "http://127.0.0.1:9", notify=False)
    assert not any(a.notify_approvals for a in load_district(config).accounts)
    draft = compose_for_staff(run, tokens, channels="web")
    assert run("submit", str(draft["id"]), "--as", "ana", token=tokens["ana"]).exit_code == 0
    with db.session_scope(run.env["BROADCASTER_DATABASE_URL"]) as session:
        events = session.scalars(
            select(LedgerEntry.event).where(LedgerEntry.message_id == draft["id"])
        ).all()
    assert "approval.notice_queued" not in events


def test_approvers_texted_are_never_the_author_nor_disabled(run, tokens, tmp_path):
    """Who a notice texts: approvers with a phone, but not the message's author (nobody
    approves their own message), nor a disabled user; an author who is no approver never."""
    config = staff_district(run, tmp_path, "http://127.0.0.1:9", notify=True)
    text = config.read_text(encoding="utf-8").replace(
        '[users.carmen]\nroles = ["incident_commander"]\n',
        '[users.carmen]\nroles = ["incident_commander", "approver"]\nphone = "+19515550152"\n',
    )
    config.write_text(text, encoding="utf-8")
    district = load_district(config)
    url = run.env["BROADCASTER_DATABASE_URL"]
    with db.session_scope(url) as session:
        users = {u.name: u for u in session.scalars(select(User)).all()}
        assert approvals.approvers(session, district, users["ana"]) == ["ben", "carmen"]
        assert approvals.approvers(session, district, users["ben"]) == ["carmen"]
        users["carmen"].disabled_at = utcnow()
    with db.session_scope(url) as session:
        ana = session.scalars(select(User).where(User.name == "ana")).one()
        assert approvals.approvers(session, district, ana) == ["ben"]


@ON_POSTGRESQL
def test_a_copy_queued_again_after_the_notice_ran_sends_nothing(
    stack, run, tokens, tmp_path, monkeypatch
):
    """The first run sends and records `approval.notified`; a copy of run 1 that the sweep
    queued while the first only waited for a worker then finds it and sends nothing."""
    from tests.delivery.test_sweep import in_process_worker

    staff_district(run, tmp_path, stack.sandbox.url, notify=True)
    draft = compose_for_staff(run, tokens, channels="web")
    assert run("submit", str(draft["id"]), "--as", "ana", token=tokens["ana"]).exit_code == 0
    worker = in_process_worker(run, monkeypatch)
    with db.session_scope(run.env["BROADCASTER_DATABASE_URL"]) as session:
        ((_, queued),) = ledger.entries_for(session, draft["id"], ("approval.notice_queued",))
    first = approvals.notify(worker, draft["id"], queued["targets"], 1)
    assert first is not None and len(first.sent) == 3
    sent = len(stack.sandbox.posts("staff")) + len(stack.sandbox.posts("twilio"))
    assert approvals.notify(worker, draft["id"], queued["targets"], 1) is None
    assert len(stack.sandbox.posts("staff")) + len(stack.sandbox.posts("twilio")) == sent == 3
