"""A district whose ledger is signed: the sample district with `[records] signing_key`, and its
key made by the real `records keygen` (issue 16). Shared by the records and web tests."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import sqlalchemy

from broadcaster.core import db, ledger
from broadcaster.core.config import SAMPLE_CONFIG, DistrictConfig, load_district

if TYPE_CHECKING:
    from tests.conftest import Cli

KEY_FILE = "keys/ledger.key"
PROTECTED = ("ledger_entries", "ledger_tree_nodes", "ledger_checkpoints", "ledger_keys")


def signed_config(folder: Path) -> Path:
    roster = SAMPLE_CONFIG.parent / "roster.csv"
    text = SAMPLE_CONFIG.read_text().replace('roster = "roster.csv"', f'roster = "{roster}"')
    config = folder / "district.toml"
    config.write_text(text + f'\n[records]\nsigning_key = "{KEY_FILE}"\n')
    return config


@pytest.fixture
def signed_district(run: Cli, tmp_path: Path) -> DistrictConfig:
    """The sample district with a signing key made by `records keygen` (users added after)."""
    config = signed_config(tmp_path)
    run.env["BROADCASTER_CONFIG"] = str(config)
    result = run("records", "keygen")
    assert result.exit_code == 0, result.output
    return load_district(config)


def unprotect(url: str) -> sqlalchemy.Connection:
    """A connection with every append-only trigger out of the way (the ledger's, the tree's,
    the checkpoints' and keys'), as an insider with the database's owner rights has it."""
    engine = db.engine_for(url)
    connection = engine.connect()
    if engine.dialect.name == "postgresql":
        for table in PROTECTED:
            connection.execute(sqlalchemy.text(f"ALTER TABLE {table} DISABLE TRIGGER USER"))
    else:
        triggers = connection.execute(
            sqlalchemy.text("SELECT name FROM sqlite_master WHERE type = 'trigger'")
        ).scalars()
        for name in list(triggers):
            connection.execute(sqlalchemy.text(f'DROP TRIGGER "{name}"'))
    connection.commit()
    return connection


def rewrite_history(url: str, change: Callable[[ledger.Entry], ledger.Entry]) -> None:
    """The insider's full recompute: every entry read, `change` applied to each, everything
    deleted and appended again by the application's own code, so that every later hash, the
    head and the tree's nodes are recomputed; the checkpoints (which would give it away) go."""
    with unprotect(url) as connection:
        rows = connection.execute(
            sqlalchemy.text(
                "SELECT e.event, p.body, e.message_id, e.actor FROM ledger_entries e "
                "JOIN ledger_payloads p ON p.seq = e.seq ORDER BY e.seq"
            )
        ).all()
        for table in (
            "ledger_checkpoints",
            "ledger_tree_nodes",
            "ledger_payloads",
            "ledger_entries",
            "ledger_head",
        ):
            connection.execute(sqlalchemy.text(f"DELETE FROM {table}"))
        connection.commit()
    entries = [
        change(ledger.Entry(event, json.loads(body), message_id, actor))
        for event, body, message_id, actor in rows
        if event != "records.checkpoint"
    ]
    with db.session_scope(url) as session:
        ledger.append_many(session, entries)
