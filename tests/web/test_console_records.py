"""The records officer's console pages (issue 15, item 2): legal holds, the purge preview and
the purge, the export as a zip and the after-action report, through the services the CLI
calls. The attacker's side: other roles are refused and change nothing, a reason that would
display differently is refused, a form without its CSRF token is refused, bad and huge dates
are one clear line, and the zip writes nowhere but into its one folder."""

from __future__ import annotations

import datetime as dt
import html
import io
import json
import re
import zipfile
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from broadcaster.core.errors import BadInput
from broadcaster.core.models import LedgerEntry, RecordHold
from broadcaster.web.console.records import zipped
from tests.console_client import body
from tests.web.test_twilio_hooks import dispatched_texts

ENTRY = re.compile(r"records-export-[\w-]+/[A-Za-z0-9][\w.-]*")


def error_line(page: str) -> str:
    found = re.search(r'role="alert" id="[a-z-]+">([^<]*)<', page)
    assert found, "the page shows no error"
    return html.unescape(found[1])


def counts(session_factory) -> tuple[int, int]:
    """Holds and ledger entries: what a refused request must leave as it was."""
    with session_factory() as session:
        return (
            session.scalar(select(func.count()).select_from(RecordHold)) or 0,
            session.scalar(select(func.count()).select_from(LedgerEntry)) or 0,
        )


def unzip(data: bytes, into: Path) -> Path:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        names = archive.namelist()
        assert all(ENTRY.fullmatch(n) for n in names), names
        assert len({n.split("/")[0] for n in names}) == 1
        archive.extractall(into)
    return into / names[0].split("/")[0]


@pytest.fixture
def dev(console):
    return console.signed_in("dev")


def test_a_records_officer_holds_releases_previews_and_reports(
    console, dev, compose_closure, run, tokens, session_factory
):
    draft = compose_closure()
    page = body(dev.get("/console/records"))
    assert "No holds stand." in page and "Nothing is past retention." in page
    assert 'href="/console/records"' in body(dev.get("/console/"))  # the nav link

    placed = dev.post(
        "/console/records/holds", {"message": str(draft["id"]), "reason": "Request 2026-14"}
    )
    assert placed.status_code == 302, body(placed)
    ranged = dev.post(
        "/console/records/holds", {"from": "2026-03-01", "to": "2026-03-31", "reason": "Audit"}
    )
    assert ranged.status_code == 302, body(ranged)
    listed = run.json("records", "holds")
    assert [(h["message"], h["from"], h["reason"], h["placed_by"]) for h in listed] == [
        (draft["id"], None, "Request 2026-14", "dev"),
        (None, "2026-03-01", "Audit", "dev"),
    ]
    page = body(dev.get("/console/records"))
    assert "Request 2026-14" in page and "2026-03-01 to 2026-03-31" in page

    first = listed[0]["hold"]
    assert dev.post(f"/console/records/holds/{first}/release").status_code == 302
    again = dev.post(f"/console/records/holds/{first}/release")
    assert again.status_code == 403 and "already released by dev" in error_line(body(again))
    assert [h["hold"] for h in run.json("records", "holds")] == [listed[1]["hold"]]
    assert "Request 2026-14" in body(dev.get("/console/records?all=1"))

    # The purge with nothing due: the service's own answer, and no destruction record.
    purged = dev.post("/console/records/purge", {"confirm": "yes"})
    assert purged.status_code == 302
    assert "Nothing is past retention" in body(dev.get("/console/records"))

    lookup = dev.get(f"/console/records/report?message={draft['id']}")
    assert lookup.headers["Location"].endswith(f"/console/messages/{draft['id']}/report")
    report = body(dev.get(lookup.headers["Location"]))
    assert f"After-action report: message {draft['id']}" in report and "composed" in report


def test_a_purge_destroys_only_when_confirmed_and_holds_keep_what_they_cover(
    console, dev, compose_closure, session_factory, monkeypatch
):
    """The page's preview and the purge are retention.purge's; a far-future clock makes the
    draft due."""
    import datetime as dt

    from broadcaster.records import retention

    draft = compose_closure()
    later = dt.datetime.now(dt.UTC) + dt.timedelta(days=365 * 30)
    plan = retention.plan
    monkeypatch.setattr(retention, "plan", lambda s, d, now=None: plan(s, d, later))
    page = body(dev.get("/console/records"))
    assert f'Message <a href="/console/messages/{draft["id"]}">' in page
    assert "its content" in page
    before = counts(session_factory)
    unconfirmed = dev.post("/console/records/purge")
    assert unconfirmed.status_code == 400 and "tick the box" in error_line(body(unconfirmed))
    assert counts(session_factory) == before

    dev.post("/console/records/holds", {"message": str(draft["id"]), "reason": "Litigation"})
    assert "Kept: message" in body(dev.get("/console/records"))
    dev.post("/console/records/holds/1/release")
    done = dev.post("/console/records/purge", {"confirm": "yes"})
    assert done.status_code == 302
    assert "destruction record: ledger entry" in body(dev.get("/console/records"))


def test_the_export_downloads_a_zip_that_verifies_masked_unless_a_records_officer_asks(
    console, dev, run, tokens, compose_closure, tmp_path
):
    dispatched_texts(run, tokens, compose_closure, tmp_path)
    # The range is in district days: from midnight UTC to the district's midnight, the UTC date
    # of created_at is the district's next day.
    created = dt.datetime.fromisoformat(run.json("list")[0]["created_at"])
    today = created.astimezone(ZoneInfo("America/Los_Angeles")).date().isoformat()
    response = dev.post("/console/records/export", {"from": today, "to": today})
    assert response.status_code == 200, body(response)
    assert response.mimetype == "application/zip"
    assert f"records-export-{today}-to-{today}.zip" in response.headers["Content-Disposition"]
    assert response.headers["Cache-Control"] == "no-store"
    folder = unzip(response.get_data(), tmp_path / "masked")
    result = run("records", "verify-export", str(folder))
    assert result.exit_code == 0, result.output
    assert "+14155550100" not in (folder / "deliveries.csv").read_text(encoding="utf-8")
    assert "+1••••••0100" in (folder / "deliveries.csv").read_text(encoding="utf-8")

    full = dev.post("/console/records/export", {"message": "1", "include_recipients": "yes"})
    folder = unzip(full.get_data(), tmp_path / "full")
    assert run("records", "verify-export", str(folder)).exit_code == 0
    assert json.loads((folder / "manifest.json").read_text())["include_recipients"] is True
    assert "+14155550100" in (folder / "deliveries.csv").read_text(encoding="utf-8")


def test_an_admin_exports_masked_only(console, run, compose_closure, tmp_path):
    """An admin may export, masked only: the form does not offer more, the service refuses it."""
    compose_closure()
    console.tokens["it"] = run.json("users", "add", "it")["token"]
    it = console.signed_in("it")
    assert 'href="/console/records/export"' in body(it.get("/console/"))  # the nav link
    assert it.get("/console/records").status_code == 403  # holds and purges are not theirs
    form = body(it.get("/console/records/export"))
    assert "include_recipients" not in form and "only a records officer" in form
    refused = it.post("/console/records/export", {"message": "1", "include_recipients": "yes"})
    assert refused.status_code == 403 and "may not include recipients" in body(refused)
    masked = it.post("/console/records/export", {"message": "1"})
    folder = unzip(masked.get_data(), tmp_path / "admin")
    assert json.loads((folder / "manifest.json").read_text())["include_recipients"] is False
    assert run("records", "verify-export", str(folder)).exit_code == 0


@pytest.mark.parametrize(
    ("path", "form"),
    [
        ("/console/records/holds", {"message": "1", "reason": "Request"}),
        ("/console/records/holds/1/release", {}),
        ("/console/records/purge", {"confirm": "yes"}),
        ("/console/records/export", {"message": "1"}),
    ],
)
def test_other_roles_are_refused_and_change_nothing(
    console, dev, compose_closure, session_factory, path, form
):
    compose_closure()
    assert dev.post("/console/records/holds", {"message": "1", "reason": "Kept"}).status_code == 302
    refused_roles = ["ana", "ben", "carmen"] if path.endswith("export") else ["ana", "ben"]
    users = {name: console.signed_in(name) for name in refused_roles}
    before = counts(session_factory)  # signing in is recorded too
    for name, user in users.items():
        assert 'href="/console/records' not in body(user.get("/console/"))
        assert user.get("/console/records").status_code == 403
        response = user.post(path, form)
        assert response.status_code == 403, (name, body(response))
        assert "may not" in body(response)
    assert counts(session_factory) == before
    assert console.browser().post(path, form).status_code == 302  # signed out: to the sign-in


@pytest.mark.parametrize(
    ("form", "said"),
    [
        ({"message": "1", "reason": "Request \u202e41-6202"}, "U+202E"),
        ({"message": "1", "reason": "Request \u2066hidden\u2069"}, "U+2066"),
        ({"message": "1", "reason": "Request\x00"}, "U+0000"),
        ({"message": "1", "reason": "  "}, "say why the records are held; fill in “Reason”"),
        ({"from": "2026-02-30", "to": "2026-03-01", "reason": "R"}, "From '2026-02-30' is not"),
        ({"from": "2026-03-01", "to": "9" * 100_000, "reason": "R"}, "To of 100000 characters"),
        ({"from": "0001-01-01", "to": "9999-12-31", "reason": "R"}, "end of the calendar"),
        (
            {"from": "2026-03-31", "to": "2026-03-01", "reason": "R"},
            "last day (2026-03-01) is before",
        ),
        ({"from": "2026-03-01", "reason": "R"}, "needs its last day; fill in “To”"),
        ({"to": "2026-03-01", "reason": "R"}, "needs its first day; fill in “From”"),
        ({"message": "1", "from": "2026-03-01", "to": "2026-03-02", "reason": "R"}, "not both"),
        ({"reason": "R"}, "say what to hold: one message, or a range of days"),
        ({"message": "1/../../2", "reason": "R"}, "is not a message number"),
        ({"message": "99999999999", "reason": "R"}, "is not a message number"),
        ({"message": "１", "reason": "R"}, "is not a message number"),
    ],
)
def test_a_bad_hold_is_one_clear_line_and_changes_nothing(
    console, dev, compose_closure, session_factory, form, said
):
    compose_closure()
    before = counts(session_factory)
    response = dev.post("/console/records/holds", form)
    assert response.status_code == 400
    line = error_line(body(response))
    assert said in line and "\n" not in line and len(line) < 300, line
    assert "--" not in line and "broadcaster " not in line, line  # the CLI's words stay there
    assert counts(session_factory) == before


@pytest.mark.parametrize(
    ("form", "code", "said"),
    [
        ({}, 400, "say what to export: a range of days (the first and the last), or one message"),
        (
            {"to": "2026-03-01"},
            400,
            "an export of a range of days needs its first day; fill in “From”",
        ),
        ({"message": "99"}, 404, "no message 99"),
    ],
)
def test_a_bad_export_names_the_form_fields_not_the_command_line(
    dev, compose_closure, session_factory, form, code, said
):
    compose_closure()
    before = counts(session_factory)
    response = dev.post("/console/records/export", form)
    assert response.status_code == code
    line = error_line(body(response))
    assert said in line and "--" not in line and "broadcaster " not in line, line
    assert counts(session_factory) == before


def test_a_form_without_its_csrf_token_is_refused(console, dev, compose_closure, session_factory):
    compose_closure()
    before = counts(session_factory)
    for path, form in (
        ("/console/records/holds", {"message": "1", "reason": "Forged"}),
        ("/console/records/purge", {"confirm": "yes"}),
        ("/console/records/export", {"message": "1"}),
    ):
        response = dev.post(path, form, with_csrf=False)
        assert response.status_code == 400 and "nothing was done" in body(response)
    assert counts(session_factory) == before


def test_the_zip_refuses_a_file_name_that_could_leave_its_folder(tmp_path):
    out = tmp_path / "records-export-message-1"
    out.mkdir()
    (out / "manifest.json").write_text("{}")
    with zipfile.ZipFile(zipped(out)) as archive:
        assert archive.namelist() == ["records-export-message-1/manifest.json"]
    for bad in (".hidden", "a b", "évil", "x\\..\\y", "-rf"):
        (out / bad).write_text("x")
        with pytest.raises(BadInput, match="unexpected file name"):
            zipped(out)
        (out / bad).unlink()
    (out / "link.json").symlink_to(tmp_path)
    with pytest.raises(BadInput, match="not a file"):
        zipped(out)
