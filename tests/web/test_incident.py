"""The console's incident page (web/console/incident.py) through Flask's test client: only an
incident commander sees and uses it; the review names the school and counts its families; the
send is `messages.trigger_and_dispatch`, as `broadcaster trigger --yes`; and what an attacker
posts directly (another template, another school, no CSRF token, hidden characters) is refused
with nothing written."""

from __future__ import annotations

import html
import re

import pytest
from sqlalchemy import func, select

from broadcaster.core.models import Delivery, LedgerEntry, Message
from tests.console_client import body


def counted(session_factory, model: type) -> int:
    with session_factory() as session:
        return session.scalar(select(func.count()).select_from(model)) or 0


def lockdown_form(browser, **extra: str) -> dict:
    return {"school": "lincoln-hs", "confirm": "yes", "csrf_token": browser.token, **extra}


@pytest.mark.parametrize("name", ["ana", "ben"])
def test_authors_and_approvers_get_no_link_and_403(console, name):
    user = console.signed_in(name)
    assert 'href="/console/incident"' not in body(user.get("/console/"))
    for path in ("/console/incident", "/console/incident/lockdown"):
        response = user.get(path)
        assert response.status_code == 403, path
        assert f"{name} (" in body(response) and 'name="school"' not in body(response)
    form = lockdown_form(user)
    assert user.post("/console/incident/lockdown/review", form).status_code == 403
    assert user.post("/console/incident/lockdown/send", form).status_code == 403


def test_commander_picks_a_school_reviews_its_families_and_sends(console, session_factory):
    carmen = console.signed_in("carmen")
    home = body(carmen.get("/console/"))
    assert 'href="/console/incident"' in home
    chooser = body(carmen.get("/console/incident"))
    # The pre-approved templates only, as buttons.
    for name in ("lockdown", "evacuation", "shelter_in_place", "all_clear"):
        assert f'class="button big" href="/console/incident/{name}"' in chooser
    assert "/console/incident/school_closure" not in chooser
    form = body(carmen.get("/console/incident/lockdown"))
    assert 'type="radio" name="school" value="lincoln-hs"' in form
    assert "Lincoln High School" in form and 'name="reason.es"' not in form

    ledger_before = counted(session_factory, LedgerEntry)
    review = carmen.post("/console/incident/lockdown/review", lockdown_form(carmen))
    page = body(review)
    assert review.status_code == 200, page
    assert 'id="review-school">Lincoln High School<' in page
    # The sample district's contacts: one Lincoln family texts, the other opted out.
    assert re.search(r'id="review-audience">1 famil[^<]*: 1 [^<]*texted', page), page
    assert 'name="confirm" value="yes"' in page
    # "Change something" brings the picked school back to the form.
    again = body(carmen.get("/console/incident/lockdown?school=lincoln-hs"))
    assert 'value="lincoln-hs" id="var-school-1" required checked' in again
    # The review is a rolled-back trigger: nothing is saved.
    assert counted(session_factory, Message) == 0
    assert counted(session_factory, LedgerEntry) == ledger_before

    sent = carmen.post("/console/incident/lockdown/send", lockdown_form(carmen))
    assert sent.status_code == 302, body(sent)
    message_id = int(sent.headers["Location"].rstrip("/").split("/")[-1])
    assert sent.headers["Location"] == f"/console/messages/{message_id}"
    with session_factory() as session:
        message = session.get(Message, message_id)
        assert message.template == "lockdown"
        assert message.kind == "actual" and message.audience == "school:lincoln-hs"
        assert message.pre_approved and message.needs_review and message.urgent
        assert message.state not in ("draft", "submitted")
        assert message.variables["school"] == "lincoln-hs"
        deliveries = session.scalar(
            select(func.count()).select_from(Delivery).where(Delivery.message_id == message_id)
        )
    assert deliveries  # queued for the workers
    delivery_page = body(carmen.get(sent.headers["Location"]))
    assert "Lockdown triggered: message" in delivery_page and 'id="message-state"' in delivery_page


def test_what_is_posted_directly_is_checked_by_the_trigger(console, session_factory):
    carmen = console.signed_in("carmen")
    carmen.get("/console/incident/lockdown")
    # A template that needs a second person, asked for by name.
    assert carmen.get("/console/incident/school_closure").status_code == 403
    closure = {"schools": "all", "date": "2026-03-03", "reason": "snow"}
    refused = carmen.post("/console/incident/school_closure/send", lockdown_form(carmen, **closure))
    assert refused.status_code == 403
    assert "not pre-approved" in html.unescape(body(refused))
    assert carmen.get("/console/incident/no_such_template").status_code == 404
    # A school of another district; no school at all.
    other = carmen.post("/console/incident/lockdown/send", lockdown_form(carmen, school="evil-hs"))
    assert other.status_code == 400 and "evil-hs" in html.unescape(body(other))
    empty = carmen.post("/console/incident/lockdown/send", lockdown_form(carmen, school=""))
    assert empty.status_code == 400 and "missing variable 'school'" in html.unescape(body(empty))
    # Text with a bidi override is refused as the CLI refuses it, naming the character.
    tricked = carmen.post(
        "/console/incident/lockdown/review", lockdown_form(carmen, reason="police \u202eevird")
    )
    assert tricked.status_code == 400
    assert "U+202E" in body(tricked) and 'role="alert"' in body(tricked)
    # The send without its confirmation (the CLI's --yes), and without the CSRF token.
    unconfirmed = lockdown_form(carmen)
    del unconfirmed["confirm"]
    response = carmen.post("/console/incident/lockdown/send", unconfirmed)
    assert response.status_code == 400 and "confirm it on the review page" in body(response)
    no_token = lockdown_form(carmen)
    del no_token["csrf_token"]
    response = carmen.post("/console/incident/lockdown/send", no_token, with_csrf=False)
    assert response.status_code == 400 and "did not come from this console" in body(response)
    assert counted(session_factory, Message) == 0
