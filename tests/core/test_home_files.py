"""Files in BROADCASTER_HOME are readable by their owner only, whatever the umask: the folder
itself, the SQLite database with its -wal and -shm files, and the web app's secret key."""

from __future__ import annotations

import os
import stat

import pytest

from broadcaster.core import db
from broadcaster.core.config import Settings
from broadcaster.web import create_app
from tests.conftest import Cli


@pytest.mark.parametrize("umask", [0o022, 0o000])
def test_the_home_and_its_files_are_the_owners_only_whatever_the_umask(tmp_path, umask):
    home = tmp_path / "home"
    settings = Settings(home=home)
    embedded = Cli({"BROADCASTER_HOME": str(home), "BROADCASTER_TOKEN": ""})
    previous = os.umask(umask)
    try:
        result = embedded("users", "add", "ana")  # creates the home and its database
        assert result.exit_code == 0, result.output
        create_app(settings)  # the console's secret key
    finally:
        os.umask(previous)
    try:
        modes = {p.name: stat.S_IMODE(p.lstat().st_mode) for p in home.iterdir()}
        assert stat.S_IMODE(home.stat().st_mode) == 0o700
        # The -wal and -shm files exist while a connection is open (the CLI's pool keeps one).
        expected = {"broadcaster.db", "broadcaster.db-wal", "broadcaster.db-shm", "secret_key"}
        assert expected <= set(modes), modes
        assert modes == dict.fromkeys(modes, 0o600)
    finally:
        db.engine_for(settings.effective_database_url).dispose()
