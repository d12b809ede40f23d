"""The key that signs the ledger's checkpoints, and the signed notes it writes.

An Ed25519 key (the `cryptography` package) in a file that the district config names
(`[records] signing_key`), readable by its owner only: the private half is never in the database,
so whoever can write the database still cannot sign. Its texts are those of the C2SP signed-note
format (https://c2sp.org/signed-note), as Go's golang.org/x/mod/sumdb/note writes them, so that
any witness or verifier that speaks the format can check our checkpoints:

- the key file: `PRIVATE+KEY+<name>+<key hash>+<base64(0x01 || seed)>`
- the public key (verifier key): `<name>+<key hash>+<base64(0x01 || public key)>`
- a note: its text lines, a blank line, then one `— <name> <base64(key hash || signature)>` line
  per signature; the key hash is the first 4 bytes of SHA-256(name || "\\n" || 0x01 || public key).

The name is the log's origin (e.g. `alerts.example.org/ledger`). The key id used across the
records is the key hash in hex.

A rotation (`records keygen --rotate`) writes a handover note naming the old and the new public
key, signed by both: a witness that pinned the old key accepts the new one only through it. The
public keys, with their handovers, are kept in the `ledger_keys` table and in the
`<key>.pub-history` file next to the key (one JSON object a line), which survives the database.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import json
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from sqlalchemy import select
from sqlalchemy.orm import Session

from broadcaster.core import db, ledger, owner_only
from broadcaster.core.config import DistrictConfig
from broadcaster.core.errors import BadInput
from broadcaster.core.models import LedgerKey, utcnow

ED25519 = b"\x01"  # the signed-note algorithm byte
PRIVATE_PREFIX = "PRIVATE+KEY+"
SIGNATURE_PREFIX = "\u2014 "  # an em dash and a space
KEY_EVENT = "records.key"
# Notes we sign or read are a few hundred bytes; a larger one is refused before any parsing.
MAX_NOTE_BYTES = 16 * 1024
MAX_SIGNATURES = 16
# Times in notes, key records and checkpoints: UTC to the second, as tlog-checkpoint writes them.
TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


class NoteError(ValueError):
    """A note that is malformed, or not signed by a key we know."""


@dataclass(frozen=True)
class VerifierKey:
    name: str
    key_id: str  # the key hash, 8 hex digits
    key: Ed25519PublicKey

    @property
    def text(self) -> str:
        return f"{self.name}+{self.key_id}+{_b64(ED25519 + _raw(self.key))}"


@dataclass(frozen=True)
class Signer:
    name: str
    private_key: Ed25519PrivateKey

    @property
    def verifier(self) -> VerifierKey:
        public = self.private_key.public_key()
        return VerifierKey(self.name, key_hash(self.name, public).hex(), public)

    @property
    def key_id(self) -> str:
        return self.verifier.key_id

    @property
    def public_key(self) -> str:
        """The verifier key text, as /ledger/key publishes it."""
        return self.verifier.text

    def sign(self, data: bytes) -> bytes:
        return self.private_key.sign(data)

    def file_text(self) -> str:
        seed = self.private_key.private_bytes_raw()
        return f"{PRIVATE_PREFIX}{self.name}+{self.key_id}+{_b64(ED25519 + seed)}\n"


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text.encode("ascii"), validate=True)


def _raw(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(Encoding.Raw, PublicFormat.Raw)


def key_hash(name: str, key: Ed25519PublicKey) -> bytes:
    return hashlib.sha256(name.encode() + b"\n" + ED25519 + _raw(key)).digest()[:4]


def check_name(name: str) -> str:
    """A key name: printable ASCII without spaces or '+' (the formats split on them)."""
    if not name or len(name) > 200 or not all(0x21 <= ord(c) <= 0x7E and c != "+" for c in name):
        raise NoteError(f"{name[:60]!r} is not a key name (printable ASCII, no spaces or '+')")
    return name


def parse_verifier_key(text: str) -> VerifierKey:
    """`<name>+<hash>+<base64(0x01 || key)>`, the text /ledger/key and `--key` give."""
    parts = text.strip().split("+", 2)  # base64 has '+' too
    if len(parts) != 3:
        raise NoteError("not a verifier key (expected NAME+HASH+BASE64KEY)")
    name, hash_hex, encoded = parts
    check_name(name)
    try:
        raw = _unb64(encoded)
    except (binascii.Error, ValueError):
        raise NoteError("the verifier key is not valid base64") from None
    if len(raw) != 33 or raw[:1] != ED25519:
        raise NoteError("the verifier key is not an Ed25519 key")
    key = Ed25519PublicKey.from_public_bytes(raw[1:])
    if key_hash(name, key).hex() != hash_hex.lower():
        raise NoteError("the verifier key's hash does not match its name and key")
    return VerifierKey(name, hash_hex.lower(), key)


def parse_signer(text: str, where: str) -> Signer:
    fields = text.strip().removeprefix(PRIVATE_PREFIX).split("+", 2)
    if not text.startswith(PRIVATE_PREFIX) or len(fields) != 3:
        raise BadInput(
            f"{where} is not a signing key (create one with `broadcaster records keygen`)"
        )
    name, hash_hex, encoded = fields
    try:
        raw = _unb64(encoded)
        if len(raw) != 33 or raw[:1] != ED25519:
            raise ValueError
        signer = Signer(check_name(name), Ed25519PrivateKey.from_private_bytes(raw[1:]))
    except (ValueError, binascii.Error):
        raise BadInput(f"{where} is not a valid Ed25519 signing key") from None
    if signer.key_id != hash_hex.lower():
        raise BadInput(f"{where}: the key's hash does not match its name and key (edited?)")
    return signer


def generate(name: str) -> Signer:
    return Signer(check_name(name), Ed25519PrivateKey.generate())


def origin(district: DistrictConfig) -> str:
    """The log's name: the public site's host, then /ledger."""
    host = urlsplit(district.district.alerts_url).hostname or "localhost"
    return f"{host.encode('idna').decode('ascii')}/ledger"


def load_signer(source: DistrictConfig | Path) -> Signer:
    """The signer in the configured key file (or this file). A key that others may read is
    refused: it may already have been copied."""
    if isinstance(source, DistrictConfig):
        path = source.signing_key_path
        if path is None:
            raise BadInput("no signing key: set [records] signing_key in the district file")
    else:
        path = source
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError as exc:
        hint = " (create it with `broadcaster records keygen`)" if exc.errno == 2 else ""
        raise BadInput(f"cannot read the signing key {path}: {exc.strerror}{hint}") from None
    found = os.fstat(fd)
    if not stat.S_ISREG(found.st_mode):  # a folder opens too, and fails only when read
        os.close(fd)
        raise BadInput(f"the signing key {path} is not a file: name the key file itself")
    with os.fdopen(fd, encoding="ascii", errors="replace") as handle:
        mode = stat.S_IMODE(found.st_mode)
        if mode & 0o077:
            raise BadInput(
                f"the signing key {path} may be read by others (mode {mode:o}): "
                f"run `chmod 600 {path}`, and rotate the key if anyone else could read it"
            )
        text = handle.read(4096)
    return parse_signer(text, str(path))


def configured_signer(district: DistrictConfig) -> Signer | None:
    """The district's signer, or None when no key is configured (nothing is signed then)."""
    return load_signer(district) if district.signing_key_path else None


def verify_signature(key: str | Ed25519PublicKey, data: bytes, signature: bytes) -> bool:
    """Whether `signature` is `key`'s over `data` (a verifier key text or a key object)."""
    public = parse_verifier_key(key).key if isinstance(key, str) else key
    try:
        public.verify(signature, data)
    except InvalidSignature:
        return False
    return True


# Signed notes ------------------------------------------------------------------------------


def check_note_text(text: str) -> str:
    """A note's text: printable ASCII lines, each ending in a newline, none empty (so that the
    blank line before the signatures is unambiguous). Anything else, bidi controls and
    non-UTF-8 bytes included, is refused rather than interpreted."""
    if not text.endswith("\n") or "\n\n" in text or text.startswith("\n"):
        raise NoteError("a note's text is non-empty lines, each ending in a newline")
    if not all(c == "\n" or 0x20 <= ord(c) <= 0x7E for c in text):
        raise NoteError("a note's text may hold printable ASCII only")
    return text


def sign_note(text: str, *signers: Signer) -> str:
    check_note_text(text)
    data = text.encode("ascii")
    lines = (
        f"{SIGNATURE_PREFIX}{s.name} {_b64(bytes.fromhex(s.key_id) + s.sign(data))}\n"
        for s in signers
    )
    return text + "\n" + "".join(lines)


@dataclass(frozen=True)
class OpenedNote:
    text: str
    signed_by: list[VerifierKey]  # the known keys whose signatures verified


def open_note(note: str | bytes, keys: list[VerifierKey]) -> OpenedNote:
    """The note's text once a signature by one of `keys` verifies; NoteError otherwise (too
    large, not UTF-8, malformed, no known signature, a known key's signature that fails)."""
    raw = note.encode("utf-8") if isinstance(note, str) else note
    if len(raw) > MAX_NOTE_BYTES:
        raise NoteError(f"the note is larger than {MAX_NOTE_BYTES} bytes")
    try:
        decoded = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise NoteError("the note is not UTF-8") from None
    split = decoded.rfind("\n\n")
    if split < 0:
        raise NoteError("the note has no signature block")
    text, block = decoded[: split + 1], decoded[split + 2 :]
    check_note_text(text)
    if not block.endswith("\n"):
        raise NoteError("the note's signature block does not end in a newline")
    lines = block[:-1].split("\n")
    if len(lines) > MAX_SIGNATURES:
        raise NoteError(f"the note has more than {MAX_SIGNATURES} signatures")
    known = {(k.name, k.key_id): k for k in keys}
    verified: list[VerifierKey] = []
    for line in lines:
        name, signature = _signature_line(line)
        key = known.get((name, signature[:4].hex()))
        if key is None:
            continue  # another party's signature (a witness's cosignature, say)
        if not verify_signature(key.key, text.encode("ascii"), signature[4:]):
            raise NoteError(f"the signature by key {key.key_id} does not verify")
        verified.append(key)
    if not verified:
        raise NoteError("the note is not signed by a known key")
    return OpenedNote(text, verified)


def _signature_line(line: str) -> tuple[str, bytes]:
    if not line.startswith(SIGNATURE_PREFIX):
        raise NoteError("a signature line does not start with an em dash")
    fields = line[len(SIGNATURE_PREFIX) :].split(" ")
    if len(fields) != 2:
        raise NoteError("a signature line is not '— NAME SIGNATURE'")
    name, encoded = fields
    check_name(name)
    try:
        signature = _unb64(encoded)
    except (binascii.Error, ValueError):
        raise NoteError("a signature is not valid base64") from None
    if len(signature) < 5:  # a key hash and a signature (others' may be of other kinds)
        raise NoteError("a signature line holds no signature")
    return name, signature


# Key files and rotation --------------------------------------------------------------------


def history_path(key_path: Path) -> Path:
    return key_path.with_name(key_path.name + ".pub-history")


def handover_text(old: VerifierKey, new: VerifierKey, at: dt.datetime) -> str:
    return (
        f"{old.name} key handover\n"
        f"old {old.text}\n"
        f"new {new.text}\n"
        f"time {at.astimezone(dt.UTC).strftime(TIME_FORMAT)}\n"
    )


@dataclass(frozen=True)
class KeyRecord:
    """One public key of the log, with the handover note that introduced it (None for the
    first key)."""

    key_id: str
    verifier_key: str
    created_at: str
    handover: str | None = None

    def line(self) -> str:
        """One line of a key history (the `.pub-history` file, /ledger/key/history)."""
        return json.dumps(self.__dict__, sort_keys=True) + "\n"


def _write_key(path: Path, signer: Signer) -> None:
    try:
        fd = owner_only.create_file(path)
    except OSError as exc:
        raise BadInput(f"cannot create {path}: {exc.strerror}") from None
    with os.fdopen(fd, "w", encoding="ascii") as handle:
        handle.write(signer.file_text())


def _append_history(path: Path, record: KeyRecord) -> None:
    history = history_path(path)
    owner_only.ensure_file(history)  # public, but only the owner appends to it
    with history.open("a", encoding="ascii") as handle:
        handle.write(record.line())


def _record(session: Session, record: KeyRecord) -> None:
    session.add(
        LedgerKey(
            key_id=record.key_id,
            verifier_key=record.verifier_key,
            handover=record.handover,
            created_at=utcnow(),
        )
    )
    ledger.append(session, KEY_EVENT, record.__dict__)


def _pending(path: Path, signer: Signer) -> Path:
    """The new key written beside `path`: it takes `path`'s place only once the database has
    recorded it (a rotation or keygen that stopped half-way leaves nothing in use)."""
    pending = path.with_name(path.name + ".new")
    pending.unlink(missing_ok=True)  # from an attempt that rolled back: never used
    _write_key(pending, signer)
    return pending


def _install(session: Session, path: Path, pending: Path, record: KeyRecord) -> None:
    def install() -> None:
        _append_history(path, record)
        os.replace(pending, path)

    _record(session, record)
    db.after_commit(session, install)


def create_key(session: Session, path: Path, name: str, *, lost: bool = False) -> Signer:
    """A new key at `path` (refused if a file is there), recorded in the database and, once
    that commits, in the public-key history next to it. A log that had a key already takes a
    new one without a handover only when told the old one is `lost`."""
    if path.exists() or path.is_symlink():
        raise BadInput(
            f"{path} exists: keygen never overwrites a key (use --rotate to start a new one)"
        )
    known = key_records(session)
    if known and not lost:
        raise BadInput(
            f"the ledger's key {known[-1].key_id} has no file at {path}: restore it from its "
            "offline copy, or, if it is lost, run `broadcaster records keygen --lost` "
            "(witnesses must then be given the new key with --key)"
        )
    if lost and not known:
        raise BadInput("there is no earlier key to replace: run `broadcaster records keygen`")
    path.parent.mkdir(parents=True, exist_ok=True)
    signer = generate(name)
    _install(
        session,
        path,
        _pending(path, signer),
        KeyRecord(signer.key_id, signer.public_key, now_text()),
    )
    return signer


def rotate_key(session: Session, path: Path) -> tuple[Signer, Signer]:
    """Start a new key in place of the one at `path`: the handover is signed by the old key and
    the new one, both public keys stay in the history, and the old private key is gone."""
    old = load_signer(path)
    new = generate(old.name)
    handover = sign_note(handover_text(old.verifier, new.verifier, utcnow()), old, new)
    record = KeyRecord(new.key_id, new.public_key, now_text(), handover)
    _install(session, path, _pending(path, new), record)
    return old, new


def now_text() -> str:
    return utcnow().strftime(TIME_FORMAT)


def key_records(session: Session) -> list[KeyRecord]:
    rows = session.scalars(select(LedgerKey).order_by(LedgerKey.id))
    return [
        KeyRecord(
            r.key_id,
            r.verifier_key,
            r.created_at.strftime(TIME_FORMAT),
            r.handover,
        )
        for r in rows
    ]


def chain_keys(records: list[KeyRecord], *, restarts: bool = False) -> list[VerifierKey]:
    """The keys of a history, oldest first, each after the first accepted only through a
    handover signed by the key before it (NoteError naming the first that is not). With
    `restarts`, a key recorded without a handover (`keygen --lost`: the key before it was lost)
    is accepted too: the district's own verifier trusts its database's account of a loss; a
    witness does not, and takes a new key only from its operator."""
    return list(_chained(records, restarts))


def _chained(records: list[KeyRecord], restarts: bool) -> Iterator[VerifierKey]:
    """chain_keys's walk, a key at a time: the keys before a bad handover are yielded first."""
    keys: list[VerifierKey] = []
    for record in records:
        key = parse_verifier_key(record.verifier_key)
        if keys and record.handover is None and not restarts:
            raise NoteError(f"key {key.key_id} has no handover from key {keys[-1].key_id}")
        if keys and record.handover is not None:
            opened = open_note(record.handover, [keys[-1], key])
            expected = {keys[-1].key_id, key.key_id}
            if {k.key_id for k in opened.signed_by} != expected or (
                f"new {key.text}\n" not in opened.text
            ):
                raise NoteError(f"the handover to key {key.key_id} is not signed by both keys")
        keys.append(key)
        yield key


def public_keys(session: Session) -> dict[str, Ed25519PublicKey]:
    """The log's public keys by key id, as the database records them: the first, then each one
    handed over to, or started after a loss, up to the first handover that does not verify (a
    checkpoint signed by a key past it is then refused as unknown, which is what a verifier
    should report). The database is not the root of trust: a witness pins the key it first
    saw, and the `.pub-history` file beside the key is kept apart from the database."""
    trusted: dict[str, Ed25519PublicKey] = {}
    try:
        for key in _chained(key_records(session), restarts=True):
            trusted[key.key_id] = key.key
    except NoteError:
        pass  # the keys up to the bad handover stay trusted
    return trusted


def read_history(path: Path) -> list[KeyRecord]:
    """A `.pub-history` file's records (BadInput naming the line that is not one)."""
    records: list[KeyRecord] = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise BadInput(f"cannot read the key history {path}: {exc}") from None
    for number, line in enumerate(lines, 1):
        try:
            records.append(KeyRecord(**json.loads(line)))
        except (ValueError, TypeError):
            raise BadInput(f"{path} line {number} is not a key record") from None
    return records
