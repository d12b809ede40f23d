"""The records officer's pages: legal holds (list, place, release), what the retention schedule
would destroy now (and the purge itself), the public-records export as a zip download, and a
message's after-action report. Each calls the service function `broadcaster records ...` and
`broadcaster report` call, so the permission checks are theirs (core/permissions.py): a role
that may not is refused with 403 and nothing changes."""

from __future__ import annotations

import re
import shutil
import tempfile
import zipfile
from pathlib import Path
from typing import IO, Any

from flask import flash, redirect, render_template, request, send_file, url_for
from flask.typing import ResponseReturnValue

from broadcaster.authoring import messages, plan
from broadcaster.core.errors import BadInput, BroadcasterError
from broadcaster.core.ids import MAX_ID
from broadcaster.core.permissions import require
from broadcaster.core.wording import count
from broadcaster.records import export, holds, report, retention
from broadcaster.web import context
from broadcaster.web.console import console, forms
from broadcaster.web.console.auth import acting_user, signed_in

# What a zip entry may be called: the export's own flat file names, nothing with a path in it.
SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")


def _day(field: str, label: str) -> Any:
    value = request.form.get(field, "").strip()
    return holds.parse_day(value, label) if value else None


def _message_id(value: str | None, label: str = "Message") -> int | None:
    """A message id typed in a form, or None when left empty; BadInput for anything else."""
    value = (value or "").strip()
    if not value:
        return None
    if not (value.isascii() and value.isdigit() and len(value) <= 10 and 1 <= int(value) <= MAX_ID):
        shown = repr(value) if len(value) <= 20 else f"of {len(value)} characters"
        raise BadInput(f"{label} {shown} is not a message number (the number on its page)")
    return int(value)


def records_page(error: str | None = None, code: int = 200) -> ResponseReturnValue:
    """Holds and the purge preview. The preview is the purge's own dry run, so only those who
    may purge see it."""
    include_released = request.args.get("all") == "1"
    with context.reading() as db:
        district = context.district()
        preview = retention.purge(db, district, acting_user(db), dry_run=True)
        listed = [holds.view(district, h) for h in holds.list_holds(db, include_released)]
    page = render_template(
        "console/records.html",
        holds=listed,
        include_released=include_released,
        preview=preview,
        content=retention.CONTENT,
        error=error,
    )
    return page, code


@console.get("/records")
@signed_in
def records_home() -> ResponseReturnValue:
    return records_page()


def _changed(done: str) -> ResponseReturnValue:
    flash(done, "success")
    return redirect(url_for("console.records_home"))


@console.post("/records/holds")
@signed_in
def records_hold() -> ResponseReturnValue:
    try:
        message_id = _message_id(request.form.get("message"))
        first, last = _day("from", "From"), _day("to", "To")
        with context.transaction() as db:
            district = context.district()
            reason = request.form.get("reason", "")
            hold = holds.place(db, district, acting_user(db), reason, message_id, first, last)
            view = holds.view(district, hold)
    except BroadcasterError as exc:
        return records_page(forms.say(exc), context.http_status(exc))
    what = f"message {view['message']}" if view["message"] else f"{view['from']} to {view['to']}"
    return _changed(f"Hold {view['hold']} placed on {what}: no purge touches it until released.")


@console.post(f"/records/holds/<{context.ID}:hold_id>/release")
@signed_in
def records_release(hold_id: int) -> ResponseReturnValue:
    try:
        with context.transaction() as db:
            holds.release(db, context.district(), acting_user(db), hold_id)
    except BroadcasterError as exc:
        return records_page(forms.say(exc), context.http_status(exc))
    return _changed(f"Hold {hold_id} released.")


@console.post("/records/purge")
@signed_in
def records_purge() -> ResponseReturnValue:
    try:
        if request.form.get("confirm") != "yes":
            raise BadInput("tick the box that confirms the destruction, then purge again")
        with context.transaction() as db:
            done = retention.purge(db, context.district(), acting_user(db))
    except BroadcasterError as exc:
        return records_page(forms.say(exc), context.http_status(exc))
    if done.empty:
        return _changed("Nothing is past retention; nothing was destroyed.")
    return _changed(
        f"Destroyed what was past retention ({count(len(done.due), 'message')}, "
        f"{count(len(done.entries), 'ledger payload')}); destruction record: ledger entry "
        f"{done.record}."
    )


def export_page(error: str | None = None, code: int = 200) -> ResponseReturnValue:
    with context.reading() as db:
        require(acting_user(db), "export_records", context.district())
    form = {k: request.form.get(k, "") for k in ("from", "to", "message")}
    return render_template("console/records_export.html", error=error, form=form), code


@console.get("/records/export")
@signed_in
def records_export_form() -> ResponseReturnValue:
    return export_page()


@console.post("/records/export")
@signed_in
def records_export() -> ResponseReturnValue:
    """Built and recorded by the export service into a temporary folder, zipped (manifest
    included) under one folder named for what was exported, and sent; the folder is removed
    before the answer goes out, the zip (an unnamed temporary file) once it is sent."""
    folder = Path(tempfile.mkdtemp(prefix="broadcaster-export-"))
    try:
        message_id = _message_id(request.form.get("message"))
        first, last = _day("from", "From"), _day("to", "To")
        name = (
            f"records-export-message-{message_id}"
            if message_id is not None and first is None
            else f"records-export-{first}-to-{last}"
        )
        out = folder / name
        with context.transaction() as db:
            actor = acting_user(db)
            result = export.build(
                db,
                context.district(),
                actor,
                first=first,
                last=last,
                message_id=message_id,
                include_recipients=request.form.get("include_recipients") == "yes",
                include_student_data=request.form.get("include_student_data") == "yes",
            )
            export.publish(db, actor, result, out)
        archive = zipped(out)
    except BroadcasterError as exc:
        return export_page(forms.say(exc), context.http_status(exc))
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    response = send_file(
        archive, mimetype="application/zip", as_attachment=True, download_name=f"{name}.zip"
    )
    response.headers["Cache-Control"] = "no-store"  # it may hold phone numbers
    return response


def zipped(out: Path) -> IO[bytes]:
    """The export folder as a zip whose every entry is FOLDER/FILE: names checked against
    SAFE_NAME, so that unpacking it writes nowhere but into that one folder."""
    archive = tempfile.TemporaryFile()  # noqa: SIM115 (closed by send_file once sent)
    try:
        with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zipping:
            for path in sorted(out.iterdir()):
                if not (SAFE_NAME.fullmatch(out.name) and SAFE_NAME.fullmatch(path.name)):
                    raise BadInput(f"the export holds an unexpected file name {path.name!r}")
                if path.is_symlink() or not path.is_file():
                    raise BadInput(f"the export holds {path.name!r}, which is not a file")
                zipping.write(path, f"{out.name}/{path.name}")
        archive.seek(0)
    except BaseException:
        archive.close()
        raise
    return archive


@console.get("/records/report")
@signed_in
def records_report_lookup() -> ResponseReturnValue:
    """The report form on the records page: a message number, then its report."""
    message_id = _message_id(request.args.get("message"))
    if message_id is None:
        raise BadInput("type the number of the message to report on")
    return redirect(url_for("console.records_report", message_id=message_id))


@console.get(f"/messages/<{context.ID}:message_id>/report")
@signed_in
def records_report(message_id: int) -> ResponseReturnValue:
    """`broadcaster report`: read-only and masked, for anyone signed in, as on the command line."""
    with context.reading() as db:
        view = report.after_action(db, messages.get_message(db, message_id))
    return render_template(
        "console/records_report.html", r=view, plan_summary=plan.summary, duration=plan.duration
    )
