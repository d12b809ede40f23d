"""The files of a public-records export, as bytes: each table as CSV and as JSON Lines, the
README.txt that documents the format (README_TEXT below, the format's written definition), and
manifest.json with the SHA-256 of every other file and its own seal. CSV cells are made safe to
open in a spreadsheet; the JSON Lines keep every value exactly as recorded.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from typing import Any

from broadcaster.core import ledger

FORMAT = "broadcaster-records-export/1"
MANIFEST = "manifest.json"

README_TEXT = """\
Public-records export from broadcaster ({format})

Every table is written twice, with the same rows: NAME.csv (UTF-8, a header row; lists and
objects as JSON text in their cell; empty cell for null) and NAME.jsonl (one JSON object a line).

messages     one row per message: every column of the message (template and template_version,
             category, kind, state, audience, variables, created_at, updated_at, ...), its
             author, who submitted it, who approved it, and whether retention destroyed its
             content or its recipients' phone numbers (destroyed text reads "[destroyed ...]").
renditions   the text of the message for each channel and language, with its measurements.
approvals    every decision: by whom, on what basis ("second person", or "pre-approved template
             NAME@VERSION" for the incident path), acknowledged warnings, reason, time.
deliveries   one row per post or text: channel, account, recipient, status, attempts (requests
             that reached the provider), provider id and URL, error, times, and status_history
             (the ledger's entries for it).
reach        one row per family of each message that texted, called or e-mailed it (message_id,
             household): status reached (a text or call the provider reported delivered, an
             e-mail the mail server accepted), pending (still queued or sending, or a text or
             call sent without a report yet) or not_reached (failed or expired), the channel and
             time (reached_at) of the first delivery that reached it, tried (each delivery:
             channel, recipient, status, error, at) and last_error; as the deliveries stood when
             the export was made. A row without a household (a rehearsal) is named by recipient.
inbox        the texts families sent that were not STOP, START or HELP (records/inbox.py): those
             answering these messages and, for an export by date, those received in it. Columns:
             sid, received_at, account, from, household, answers (the message id), body (as
             kept: characters no record may hold replaced by U+FFFD, cut at 1,600 characters
             when truncated is true), forwarded_at; numbers masked and student data redacted
             like every other table's. A text retention destroyed is not listed.
ledger       the slice of the ledger's hash chain from the first to the last entry of these
             messages, then any destruction records that removed payloads in it. Columns: seq,
             created_at, event, message_id, actor, payload_sha256, prev_hash, entry_hash,
             payload, payload_state, purged_by.

Checking the ledger slice by hand (verify-export does all of it):
  entry_hash = SHA-256 (hex) of the UTF-8 JSON array
      [seq, created_at, event, message_id, actor, payload_sha256, prev_hash]
  written with ", " and ": " separators and non-ASCII characters escaped as \\uXXXX (Python's
  json.dumps defaults); each entry's prev_hash is the entry_hash of the entry before it.
  payload_state "included": payload is the entry's content exactly as hashed, so
      SHA-256(payload) = payload_sha256.
  payload_state "redacted": phone numbers or student data in the payload were redacted for this
      export (see below), so it no longer matches payload_sha256; the chain link still verifies.
  payload_state "purged": retention destroyed the payload; purged_by is the seq of the destruction
      record (included in the slice) that lists this entry.
  payload_state "omitted": the entry belongs to another message or to no message in this export.
  payload_state "missing": the payload is gone without a destruction record (the ledger is broken
      there; verify-export fails).
manifest.json gives the chain's head (seq and hash) when the export was made; `broadcaster
records verify` on the district's system checks the whole chain up to it. The district's ledger
records the export itself (event records.exported) once this folder was complete, with this
manifest's manifest_sha256.

Spreadsheets: a CSV cell whose text begins with =, +, -, @, a tab or a carriage return (or
the full-width ＝ ＋ － ＠) has a single quote (') put in front of it, so that a spreadsheet
shows it as text instead of running it as a formula (OWASP, "CSV Injection"). The .jsonl files
keep every value exactly as recorded.

Recipients: {recipients}

Student data: {student_data}

manifest.json lists every other file with its SHA-256 and carries manifest_sha256, the SHA-256
of its own canonical JSON without that key. Check everything with:
  broadcaster records verify-export THIS_FOLDER

When the district signs its ledger (manifest.json's signed_by names the key), the folder also has:
checkpoint.txt  a signed checkpoint of the ledger's Merkle tree (RFC 9162; the C2SP
                tlog-checkpoint signed-note format: origin, tree size, base64 root hash, time)
                that covers every entry of the ledger slice;
proofs.jsonl    for each entry of the slice, {{"seq", "proof"}}: its inclusion proof (base64
                hashes, RFC 9162 2.1.3) in that tree, whose leaf for entry seq is leaf seq - 1
                and whose data is the 32 bytes of the entry's entry_hash;
keys.txt        the district's public keys (Ed25519 verifier keys, one a line);
signature.txt   a signed note listing the SHA-256 and name of every other file.
Whose key it is, the export cannot say: give the district's published key (its /ledger/key page)
with --key PUBKEY, or --witness DIR for a witness that kept the checkpoint.
"""
REDACTION_NOTE = (
    "phone numbers are masked (+1•••••••0100: the country code's first digit and the last four)"
)
INCLUDED_NOTE = "phone numbers are included (exported by a records officer)"
STUDENT_DATA_NOTE = """\
the text that the district's FERPA checks (student IDs, Social Security
numbers, dates of birth, personal phone numbers and e-mail addresses, names of students on the
roster) matched in these messages is replaced by "[redacted: RULE]" wherever it appears in this
export, in every file. Redacted, by rule:
{found}"""
STUDENT_DATA_INCLUDED = (
    "included: the text the FERPA checks matched is left in (exported by a records officer with "
    "--include-student-data)"
)
# OWASP "CSV Injection": a cell that starts with one of these is a formula to a spreadsheet.
FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "\uff1d", "\uff0b", "\uff0d", "\uff20")


def readme(*, include_recipients: bool, student_data_found: str | None) -> bytes:
    """README.txt; `student_data_found` says what was redacted, None when a records officer kept
    the student data."""
    text = README_TEXT.format(
        format=FORMAT,
        recipients=INCLUDED_NOTE if include_recipients else REDACTION_NOTE,
        student_data=(
            STUDENT_DATA_INCLUDED
            if student_data_found is None
            else STUDENT_DATA_NOTE.format(found=student_data_found)
        ),
    )
    return text.encode("utf-8")


def manifest_bytes(manifest: dict[str, Any]) -> bytes:
    body = {k: v for k, v in manifest.items() if k != "manifest_sha256"}
    sealed = {**body, "manifest_sha256": ledger.sha256(ledger.canonical(body))}
    return (json.dumps(sealed, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode()


def file_sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, dict | list | bool):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, str):
        return spreadsheet_safe(value)
    return value  # a number is never a formula


def spreadsheet_safe(text: str) -> str:
    """A CSV cell a spreadsheet shows as text, never runs as a formula (OWASP CSV Injection)."""
    return "'" + text if text.startswith(FORMULA_START) else text


def csv_file(rows: list[dict[str, Any]]) -> bytes:
    columns = list(dict.fromkeys(k for row in rows for k in row))
    out = io.StringIO(newline="")
    writer = csv.DictWriter(out, fieldnames=columns)
    writer.writeheader()
    writer.writerows({k: _cell(v) for k, v in row.items()} for row in rows)
    return out.getvalue().encode("utf-8")


def jsonl_file(rows: list[dict[str, Any]]) -> bytes:
    return "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows).encode("utf-8")
