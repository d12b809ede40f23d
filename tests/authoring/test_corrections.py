"""Corrections and retractions end to end: real Celery workers on real Redis, the real SDKs
against the provider sandbox, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from broadcaster.authoring.catalog import Catalog
from broadcaster.authoring.limits import measure
from broadcaster.authoring.render import render_all
from broadcaster.authoring.variables import parse_values
from broadcaster.core.models import WebAlert
from broadcaster.web import alerts
from broadcaster.web.cap import identifier
from tests.conftest import submit_and_approve
from tests.console_client import body
from tests.delivery_stack import texts_by_phone

LINCOLN = ("+14155550101", "+14155550102", "+14155550103")
LOCKDOWN = ("--var", "school=lincoln-hs", "--audience", "school:lincoln-hs")
ALL_CLEAR = ("--var", "school=lincoln-hs", "--var", "incident=lockdown")


@pytest.fixture
def admin(run) -> str:
    return run.json("users", "add", "it")["token"]


def import_contacts(run, admin: str, tmp_path, rows: list[str]) -> None:
    csv = tmp_path / "contacts.csv"
    csv.write_text(
        "phone,language,schools,routes,grades,opted_out\n" + "\n".join(rows) + "\n",
        encoding="utf-8",
    )
    run.json("contacts", "import", str(csv), "--as", "it", token=admin)


def lincoln_contacts(run, admin: str, tmp_path) -> None:
    import_contacts(
        run,
        admin,
        tmp_path,
        [
            f"{LINCOLN[0]},en,lincoln-hs,12,10,no",
            f"{LINCOLN[1]},es,lincoln-hs,12,10,no",
            f"{LINCOLN[2]},en,lincoln-hs,12,10,no",
            "+14155550109,en,jefferson-es,7,3,no",  # another school
        ],
    )


def finished(run, message_id: int) -> dict:
    """`status --follow`: returns once the message (and any retraction of it) is done."""
    return run.json("status", str(message_id), "--follow", "--timeout", "120")


def web_alert_rows(session_factory) -> list:
    with session_factory() as session:
        return session.scalars(select(WebAlert).order_by(WebAlert.published_at)).all()


def test_an_update_replies_everywhere_and_texts_only_the_original_recipients(
    stack, run, tokens, admin, tmp_path, session_factory, district
):
    lincoln_contacts(run, admin, tmp_path)
    stack.start_worker()
    lockdown = run.json(
        "trigger", "lockdown", "--as", "carmen", *LOCKDOWN, "--yes", token=tokens["carmen"]
    )
    assert finished(run, lockdown["id"])["state"] == "sent"
    # Since the lockdown: one parent opts out, and a new family joins Lincoln.
    import_contacts(
        run,
        admin,
        tmp_path,
        [
            f"{LINCOLN[0]},en,lincoln-hs,12,10,no",
            f"{LINCOLN[1]},es,lincoln-hs,12,10,no",
            f"{LINCOLN[2]},en,lincoln-hs,12,10,yes",
            "+14155550104,en,lincoln-hs,12,10,no",
        ],
    )

    # The incident commander sends the all clear at once: both templates are pre-approved.
    update = run.json(
        "update",
        str(lockdown["id"]),
        "all_clear",
        "--as",
        "carmen",
        *ALL_CLEAR,
        "--yes",
        token=tokens["carmen"],
    )
    assert update["recipients"] == 2
    assert finished(run, update["id"])["state"] == "sent"

    # Each message's English post and its Spanish reply; the update answers the first post.
    tweets = stack.sandbox.posts("x")
    assert len(tweets) == 4
    assert tweets[2]["in_reply_to_tweet_id"] == tweets[0]["id"]
    assert "ALL CLEAR" in tweets[2]["text"]
    assert tweets[3]["in_reply_to_tweet_id"] == tweets[2]["id"]
    pages = stack.sandbox.posts("facebook")
    assert len(pages) == 2
    assert pages[0].get("link") is None
    assert pages[1]["link"] == f"https://www.facebook.com/{pages[0]['id']}"

    first, second = web_alert_rows(session_factory)
    assert second.reply_to == first.id
    with session_factory() as session:
        alert = alerts.get_alert(session, district, Catalog(district), second.id)
        cap = alerts.cap_document(session, district, alert).decode()
    assert "<msgType>Update</msgType>" in cap
    assert identifier(district, lockdown["id"]) in cap.split("<references>")[1]

    texts = texts_by_phone(stack.sandbox)
    assert set(texts) == set(LINCOLN)  # the new family was not texted the lockdown or all clear
    assert len(texts[LINCOLN[0]]) == 2 and "ALL CLEAR" in texts[LINCOLN[0]][1]
    assert len(texts[LINCOLN[1]]) == 2 and "FIN DE LA ALERTA" in texts[LINCOLN[1]][1]
    assert len(texts[LINCOLN[2]]) == 1  # opted out since: not texted again
    assert run("records", "verify").exit_code == 0


def test_an_authors_update_goes_through_approval(
    stack, run, tokens, admin, compose_closure, tmp_path
):
    lincoln_contacts(run, admin, tmp_path)
    stack.start_worker()
    closure = compose_closure()
    submit_and_approve(run, tokens, closure)
    assert finished(run, closure["id"])["state"] == "sent"
    extended = (
        "--var",
        "schools=lincoln-hs,jefferson-es",
        "--var",
        "date=2026-03-04",
        "--var",
        "reason=the storm damage",
    )
    refused = run(
        "update", str(closure["id"]), "school_closure", "--as", "ana", *extended, "--yes",
        token=tokens["ana"],
    )  # fmt: skip
    assert (
        refused.exit_code == 2 and "may not send a pre-approved template at once" in refused.stderr
    )
    draft = run.json(
        "update", str(closure["id"]), "school_closure", "--as", "ana", *extended,
        token=tokens["ana"],
    )  # fmt: skip
    assert draft["state"] == "draft" and draft["recipients"] == 4
    assert len(stack.sandbox.posts("x")) == 2  # nothing goes out before approval
    submit_and_approve(run, tokens, draft)
    assert finished(run, draft["id"])["state"] == "sent"
    tweets = stack.sandbox.posts("x")
    assert tweets[2]["in_reply_to_tweet_id"] == tweets[0]["id"]
    assert {phone: len(t) for phone, t in texts_by_phone(stack.sandbox).items()} == {
        phone: 2 for phone in (*LINCOLN, "+14155550109")
    }


def test_a_retraction_deletes_cancels_and_texts_a_correction_once(
    stack, run, tokens, admin, compose_closure, tmp_path, session_factory, district
):
    lincoln_contacts(run, admin, tmp_path)
    stack.start_worker()
    closure = compose_closure()
    submit_and_approve(run, tokens, closure)
    assert finished(run, closure["id"])["state"] == "sent"
    mid = str(closure["id"])

    refused = run("retract", mid, "--as", "ana", "--reason", "wrong date", token=tokens["ana"])
    assert refused.exit_code == 2 and "may not retract" in refused.stderr
    refused = run("retract", mid, "--as", "ben", "--reason", "  ", token=tokens["ben"])
    assert refused.exit_code == 2 and "--reason" in refused.stderr
    assert run.json("show", mid)["state"] == "sent"  # a refusal changes nothing

    result = run("retract", mid, "--as", "ben", "--reason", "wrong date", token=tokens["ben"])
    assert result.exit_code == 0, result.output
    view = finished(run, closure["id"])
    assert view["state"] == "retracted", view
    assert view["retraction"]["still_live"] == []
    assert {d["channel"] for d in view["retraction"]["deleted"]} == {"x", "facebook", "web"}

    # Every tweet of the thread (the English post and its Spanish reply).
    assert [t["deleted"] for t in stack.sandbox.posts("x")] == [True, True]
    assert [p["deleted"] for p in stack.sandbox.posts("facebook")] == [True]
    (alert,) = web_alert_rows(session_factory)
    assert alert.retracted_at is not None
    with session_factory() as session:
        shown = alerts.get_alert(session, district, Catalog(district), alert.id)
        cap = alerts.cap_document(session, district, shown).decode()
    assert "<msgType>Cancel</msgType>" in cap

    texts = texts_by_phone(stack.sandbox)
    assert set(texts) == {*LINCOLN, "+14155550109"}
    for phone, received in texts.items():
        assert len(received) == 2, (phone, received)  # the closure, then one correction
    assert texts[LINCOLN[0]][1].startswith("Riverside USD: CORRECTION: please disregard")
    assert texts[LINCOLN[1]][1].startswith("Riverside USD: AVISO: por favor ignore")

    notice = run.json("show", str(view["retraction"]["notice"]))
    assert notice["template"] == "retraction_notice"
    assert {r["locale"] for r in notice["renditions"]} == {"en", "es"}
    assert (
        notice["approvals"][0]["by"] == "ben" and notice["approvals"][0]["reason"] == "wrong date"
    )
    original = run.json("show", mid)
    assert any(s["event"] == "message.finish_retracted" for s in original["timeline"])
    again = run("retract", mid, "--as", "ben", "--reason", "again", token=tokens["ben"])
    assert again.exit_code == 2
    assert run("records", "verify").exit_code == 0


def test_a_failed_deletion_shows_what_is_still_live_and_retry_finishes_it(
    stack, run, tokens, admin, compose_closure, tmp_path, console
):
    lincoln_contacts(run, admin, tmp_path)
    stack.start_worker()
    closure = compose_closure("--channels", "x,facebook,sms")
    submit_and_approve(run, tokens, closure)
    assert finished(run, closure["id"])["state"] == "sent"
    mid = str(closure["id"])
    post_id = stack.sandbox.posts("facebook")[0]["id"]
    stack.sandbox.set_faults(
        [
            # Facebook refuses the delete for good (a permission error), X is briefly down.
            {"provider": "facebook", "method": "DELETE", "fault": "status", "status": 403,
             "code": 200, "message": "(#200) Permission error"},
            {"provider": "x", "method": "DELETE", "fault": "status", "status": 503, "count": 2},
        ]
    )  # fmt: skip
    retracted = run(
        "retract", mid, "--as", "carmen", "--reason", "sent early", token=tokens["carmen"]
    )
    assert retracted.exit_code == 0, retracted.output
    view = finished(run, closure["id"])
    assert view["state"] == "retracting"
    (live,) = view["retraction"]["still_live"]
    assert live["channel"] == "facebook" and live["post"] == post_id
    assert "Permission error" in live["error"]
    # Both tweets of the thread, retried after the 503s.
    assert [t["deleted"] for t in stack.sandbox.posts("x")] == [True, True]
    assert [p["deleted"] for p in stack.sandbox.posts("facebook")] == [False]
    shown = run("status", mid)
    assert f"STILL LIVE facebook district-facebook {post_id}" in shown.output
    console.app()  # with the stack's broker and sandbox
    page = body(console.signed_in("ben").get(f"/console/messages/{mid}"))
    assert f"Facebook district-facebook: post {post_id} (failed: " in page
    assert "Send the failed deliveries again" in page

    stack.sandbox.set_faults([])
    texts_before = texts_by_phone(stack.sandbox)
    assert run("retry", mid, "--as", "ben", token=tokens["ben"]).exit_code == 0
    view = finished(run, closure["id"])
    assert view["state"] == "retracted" and view["retraction"]["still_live"] == []
    assert [p["deleted"] for p in stack.sandbox.posts("facebook")] == [True]
    assert texts_by_phone(stack.sandbox) == texts_before  # no correction was texted twice
    x_deletes = [r for r in stack.sandbox.requests("x") if r["method"] == "DELETE"]
    assert sorted(r["status"] for r in x_deletes) == [200, 200, 503, 503]


def test_the_retraction_notice_fits_two_gsm_segments_with_the_longest_values(district):
    template = Catalog(district).get("retraction_notice")
    values = parse_values(template, {"sent_at": "2026-09-30T12:30"}, district)
    for kind in ("actual", "exercise"):
        for rendition in render_all(template, values, district, ["sms"], ["en", "es"], kind):
            metrics = measure("sms", rendition.text)
            assert metrics["encoding"] == "GSM-7", rendition.text
            assert metrics["segments"] <= 2, rendition.text
            assert district.district.alerts_url in rendition.text


def test_the_api_updates_and_retracts_with_the_same_checks(
    stack,
    serve,
    run,
    tokens,
    admin,
    compose_closure,
    tmp_path,
):
    lincoln_contacts(run, admin, tmp_path)
    stack.start_worker()
    closure = compose_closure()
    submit_and_approve(run, tokens, closure)
    assert finished(run, closure["id"])["state"] == "sent"
    api, mid = serve(), closure["id"]
    extended = {
        "template": "school_closure",
        "variables": {"schools": "all", "date": "2026-03-04", "reason": "the storm damage"},
    }
    at_once = api("POST", f"/messages/{mid}/update", tokens["ana"], {**extended, "at_once": True})
    assert at_once.status_code == 403
    draft = api("POST", f"/messages/{mid}/update", tokens["ana"], extended)
    assert draft.status_code == 201 and draft.json()["state"] == "draft"
    assert draft.json()["recipients"] == 4

    assert (
        api("POST", f"/messages/{mid}/retract", tokens["ana"], {"reason": "x"}).status_code == 403
    )
    assert api("POST", f"/messages/{mid}/retract", tokens["ben"], {}).status_code == 400
    assert (
        api("POST", f"/messages/{mid}/retract", tokens["ben"], {"reason": " "}).status_code == 422
    )
    retracted = api("POST", f"/messages/{mid}/retract", tokens["ben"], {"reason": "wrong date"})
    assert retracted.status_code == 200 and retracted.json()["state"] == "retracting"
    assert finished(run, mid)["state"] == "retracted"
    status = api("GET", f"/messages/{mid}/status", tokens["ben"]).json()
    deleted = status["retraction"]["deleted"]  # two tweets, the Facebook post, the web alert
    assert status["retraction"]["still_live"] == [] and len(deleted) == 4

    # The update drafted before the retraction can no longer go out: its posts are gone.
    update_id = draft.json()["id"]
    api("POST", f"/messages/{update_id}/submit", tokens["ana"])
    refused = api("POST", f"/messages/{update_id}/approve", tokens["ben"], {"ack_warnings": True})
    assert refused.status_code == 403 and "retracted" in refused.json()["error"]
    assert len(stack.sandbox.posts("x")) == 2
