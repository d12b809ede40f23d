"""Ledger benchmark (issue 16): appends per second with the Merkle tree and signed checkpoints
against the plain hash chain in the same run, then proof sizes and times at a million entries.

    python benchmarks/ledger.py --entries 1000000 --seconds 10

1. Appends: the application's own `ledger.append` (one entry per transaction, as a status change
   writes it) and `ledger.append_many` (100 per transaction, as the delivery recorder batches),
   each into a fresh database, as the plain chain (the tree's growth switched off in this
   process: the baseline) and with the tree and a checkpoint signed with Ed25519 every
   `--checkpoint-every` entries, in alternating one-second rounds (other load on the machine
   weighs on both alike). Target: with tree and signatures >= 0.8 of the plain chain.
2. A ledger of `--entries` entries (appended with the tree, in batches), then for random
   entries: an inclusion proof read from the database, its size and its verification time
   against a signed checkpoint; the same for consistency proofs; and `records verify`'s whole
   walk (chain + tree rebuilt from the entries). Target: a proof under 2 KB, verified in < 1 ms.

Uses PostgreSQL on 127.0.0.1:5432 when it answers (scratch databases it drops afterwards), else
(or with --sqlite) SQLite. The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
from sqlalchemy import select

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from broadcaster.core import db, ledger, ledger_tree, merkle  # noqa: E402
from broadcaster.core.models import LedgerEntry  # noqa: E402
from broadcaster.records import checkpoints, signing, verification  # noqa: E402

PG_ADMIN = "postgresql://root@127.0.0.1:5432/postgres"
BATCH = 100
PAYLOAD = {"delivery": 123456, "channel": "sms", "status": "delivered", "segments": 2}


@contextmanager
def scratch(sqlite: bool) -> Iterator[str]:
    """A new, migrated database, dropped afterwards."""
    home = Path(tempfile.mkdtemp(prefix="broadcaster-bench-ledger-"))
    name = None
    url = f"sqlite:///{home / 'bench.db'}"
    if not sqlite:
        try:
            with psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=2) as admin:
                name = f"bc_bench_{uuid.uuid4().hex[:8]}"
                admin.execute(f'CREATE DATABASE "{name}"')
            url = f"postgresql+psycopg://root@127.0.0.1:5432/{name}"
        except psycopg.OperationalError:
            name = None
    try:
        db.upgrade(url)
        yield url
    finally:
        db.engine_for(url).dispose()
        if name:
            with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        shutil.rmtree(home, ignore_errors=True)


@contextmanager
def plain_chain() -> Iterator[None]:
    """The baseline: ledger.append_many as it was before the tree (its growth a no-op)."""
    grow = ledger_tree.grow
    ledger_tree.grow = lambda session, size, frontier, entry_hashes: b""
    try:
        yield
    finally:
        ledger_tree.grow = grow


def appended(
    url: str, per_txn: int, seconds: float, signer: signing.Signer | None, every: int
) -> tuple[int, float]:
    """Entries appended in `seconds` (and the time taken), `per_txn` per transaction; with
    `signer`, a checkpoint signed (in a transaction of its own) each time `every` more entries
    are in."""
    entries = [ledger.Entry("delivery.status", PAYLOAD, 1, None)] * per_txn
    done, since_checkpoint = 0, 0
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        with db.session_scope(url) as session:
            ledger.append_many(session, entries)
        done += per_txn
        since_checkpoint += per_txn
        if signer is not None and since_checkpoint >= every:
            with db.session_scope(url) as session:
                checkpoints.sign_checkpoint(session, signer)
            since_checkpoint = 0
    return done, time.perf_counter() - start


def rates(
    sqlite: bool, per_txn: int, seconds: float, signer: signing.Signer, every: int
) -> tuple[float, float, str]:
    """Appends per second of the plain chain and of the tree with checkpoints, measured in
    alternating one-second rounds (so that other load on the machine weighs on both alike)."""
    totals = {"plain": [0, 0.0], "tree": [0, 0.0]}
    with scratch(sqlite) as plain_url, scratch(sqlite) as tree_url:
        for _ in range(max(1, round(seconds))):
            with plain_chain():
                done, took = appended(plain_url, per_txn, 1.0, None, 0)
            totals["plain"][0] += done
            totals["plain"][1] += took
            done, took = appended(tree_url, per_txn, 1.0, signer, every)
            totals["tree"][0] += done
            totals["tree"][1] += took
        database = db.engine_for(tree_url).dialect.name
    plain, tree = (totals[k][0] / totals[k][1] for k in ("plain", "tree"))
    return plain, tree, database


def timed(fn: Callable[[], object], repeat: int) -> float:
    """Mean seconds per call."""
    start = time.perf_counter()
    for _ in range(repeat):
        fn()
    return (time.perf_counter() - start) / repeat


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--entries", type=int, default=1_000_000, help="size of the big ledger")
    parser.add_argument("--seconds", type=float, default=10.0, help="per append measurement")
    parser.add_argument("--checkpoint-every", type=int, default=1000, help="entries")
    parser.add_argument("--proofs", type=int, default=200, help="random proofs to time")
    parser.add_argument("--sqlite", action="store_true", help="SQLite even if PostgreSQL answers")
    args = parser.parse_args()
    signer = signing.generate("bench.example.org/ledger")
    result: dict[str, object] = {"entries": args.entries}

    rows = []
    for per_txn, label in ((1, "append, 1 per transaction"), (BATCH, f"append_many, {BATCH}")):
        base, tree, database = rates(
            args.sqlite, per_txn, args.seconds, signer, args.checkpoint_every
        )
        rows.append((label, base, tree))
        key = "single" if per_txn == 1 else "batched"
        result[f"{key}_plain_per_s"] = round(base)
        result[f"{key}_tree_signed_per_s"] = round(tree)
        result[f"{key}_ratio"] = round(tree / base, 3)

    with scratch(args.sqlite) as url:
        start = time.perf_counter()
        left = args.entries
        while left:
            n = min(left, 10_000)
            with db.session_scope(url) as session:
                ledger.append_many(session, [ledger.Entry("bench.fill", {"n": 0})] * n)
            left -= n
        build_s = time.perf_counter() - start
        with db.session_scope(url) as session:
            checkpoint = checkpoints.sign_checkpoint(session, signer)
        if checkpoint is None:
            raise SystemExit("no checkpoint was signed over the big ledger")
        size, root = checkpoint.size, checkpoint.root
        # Reproducible picks, not secrets.
        picks = random.Random(16).sample(range(1, size + 1), min(args.proofs, size))  # noqa: S311
        with db.read_scope(url) as session:
            leaves = {
                seq: bytes.fromhex(h)
                for seq, h in session.execute(
                    select(LedgerEntry.seq, LedgerEntry.entry_hash).where(
                        LedgerEntry.seq.in_(picks)
                    )
                )
            }
            start = time.perf_counter()
            proofs = {seq: ledger_tree.inclusion_proof(session, seq, size) for seq in picks}
            read_inclusion_s = (time.perf_counter() - start) / len(picks)
            olds = random.Random(17).sample(range(1, size), min(args.proofs, size - 1))  # noqa: S311
            old_roots = {old: ledger_tree.root_at(session, old) for old in olds}
            start = time.perf_counter()
            consistency = {old: ledger_tree.consistency_proof(session, old, size) for old in olds}
            read_consistency_s = (time.perf_counter() - start) / len(olds)
        if not all(merkle.verify_inclusion(s - 1, size, leaves[s], proofs[s], root) for s in picks):
            raise SystemExit("an inclusion proof read from the database does not verify")
        if not all(
            merkle.verify_consistency(o, size, old_roots[o], root, consistency[o]) for o in olds
        ):
            raise SystemExit("a consistency proof read from the database does not verify")
        verify_inclusion_s = timed(
            lambda: [
                merkle.verify_inclusion(s - 1, size, leaves[s], proofs[s], root) for s in picks
            ],
            5,
        ) / len(picks)
        verify_consistency_s = timed(
            lambda: [
                merkle.verify_consistency(o, size, old_roots[o], root, consistency[o]) for o in olds
            ],
            5,
        ) / len(olds)
        verify_note_s = timed(
            lambda: checkpoints.parse_and_verify(checkpoint.note, [signer.verifier]), 200
        )
        with db.read_scope(url, snapshot=True) as session:
            start = time.perf_counter()
            walk = verification.verify_records(session, [signer.verifier])
            walk_s = time.perf_counter() - start
        if not walk.ok:
            raise SystemExit(f"records verify failed on the benchmark's ledger: {walk.problem}")

    inclusion_bytes = max(32 * len(p) for p in proofs.values())
    consistency_bytes = max(32 * len(p) for p in consistency.values())
    print(
        f"database {database}; checkpoint signed every {args.checkpoint_every} entries; "
        f"{args.seconds:g} alternating 1 s rounds per append measurement"
    )
    print(f"{'appends':<32}{'plain chain/s':>15}{'tree+signed/s':>15}{'ratio':>8}")
    for label, base, tree in rows:
        print(f"{label:<32}{base:>15.0f}{tree:>15.0f}{tree / base:>8.2f}")
    print(f"ledger of {size:,} entries built in {build_s:.1f} s ({size / build_s:,.0f}/s)")
    print(
        f"inclusion proof: max {inclusion_bytes} B ({inclusion_bytes // 32} hashes), read "
        f"{read_inclusion_s * 1e3:.2f} ms, verified in {verify_inclusion_s * 1e6:.1f} µs"
    )
    print(
        f"consistency proof: max {consistency_bytes} B, read {read_consistency_s * 1e3:.2f} ms, "
        f"verified in {verify_consistency_s * 1e6:.1f} µs"
    )
    print(f"checkpoint signature verified in {verify_note_s * 1e6:.0f} µs")
    print(f"records verify (chain, tree rebuilt, checkpoint) of {size:,} entries: {walk_s:.1f} s")
    result.update(
        database=database,
        build_per_s=round(size / build_s),
        inclusion_proof_max_bytes=inclusion_bytes,
        inclusion_read_ms=round(read_inclusion_s * 1e3, 3),
        inclusion_verify_us=round(verify_inclusion_s * 1e6, 1),
        consistency_proof_max_bytes=consistency_bytes,
        consistency_read_ms=round(read_consistency_s * 1e3, 3),
        consistency_verify_us=round(verify_consistency_s * 1e6, 1),
        checkpoint_verify_us=round(verify_note_s * 1e6),
        records_verify_s=round(walk_s, 1),
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
