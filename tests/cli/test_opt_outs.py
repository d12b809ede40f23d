"""Staff opt-outs from the command line (`contacts find`, `opt-out`, `opt-in`): the service the
console's contact search calls (core/opt_outs.py), with the same checks."""

from __future__ import annotations

from sqlalchemy import select

from broadcaster.core import db
from broadcaster.core.models import LedgerEntry

FULL = "+19515550101"  # the sample family H-1001's mobile


def test_an_admin_finds_a_family_masked_and_opts_it_out_of_the_next_texts(
    run, tokens, compose_closure
):
    admin = run.json("users", "add", "it")["token"]
    texted = compose_closure()["recipients"]
    found = run.json("contacts", "find", "555-0101", "--as", "it", token=admin)
    assert {f["phone"] for f in found} == {"+1••••••0101"} and len(found) == 2
    listed = run("contacts", "find", "0101", "--as", "it", token=admin)
    assert listed.exit_code == 0 and FULL not in listed.stdout
    assert listed.stdout.splitlines()[0].split("\t")[:3] == ["family_id", "household", "phone"]
    family = str(found[0]["contact_id"])

    refused = run("contacts", "opt-out", family, "--reason", "asked", "--as", "ana",
                  token=tokens["ana"])  # fmt: skip
    assert (
        refused.exit_code == 2 and "may not opt a family out of texts or back in" in refused.stderr
    )
    refused = run("contacts", "find", "0101", "--as", "dev", token=tokens["dev"])
    assert refused.exit_code == 2 and FULL not in refused.output
    bidi = run("contacts", "opt-out", family, "--reason", "asked\u202e", "--as", "it", token=admin)
    assert bidi.exit_code == 2 and "U+202E" in bidi.stderr
    assert run("contacts", "find", "01", "--as", "it", token=admin).exit_code == 2

    done = run("contacts", "opt-out", family, "--reason", "father called", "--as", "it",
               token=admin)  # fmt: skip
    assert done.exit_code == 0 and "+1••••••0101 is opted out" in done.stdout
    assert compose_closure()["recipients"] == texted - 1
    assert run("contacts", "opt-in", family, "--reason", "asked back", "--as", "it",
               token=admin).exit_code == 0  # fmt: skip
    assert compose_closure()["recipients"] == texted
    with db.session_scope(run.env["BROADCASTER_DATABASE_URL"]) as session:
        events = session.scalars(
            select(LedgerEntry.event).where(LedgerEntry.event.startswith("contact."))
        ).all()
    assert events == ["contact.opted_out", "contact.opted_in"]
    assert run("records", "verify").exit_code == 0
    again = run.json("contacts", "find", "0101", "--as", "it", token=admin)
    assert [f["opted_out"] for f in again] == [False, False]
