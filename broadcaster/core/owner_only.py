"""Files and folders only their owner can read, whatever the process's umask: the home folder,
the SQLite database (its -wal and -shm files take the database file's mode), key files.

The mode is set explicitly after creating, because a umask only takes bits away: 0o777 would
leave the owner none, and the default 0o022 leaves everyone read access."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

FILE_MODE = 0o600
FOLDER_MODE = 0o700


def create_file(path: Path) -> int:
    """Create `path` (FileExistsError if it exists, never following a link) and return a
    descriptor open for writing."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, FILE_MODE)
    os.fchmod(fd, FILE_MODE)
    return fd


def ensure_file(path: Path) -> None:
    """An empty owner-only file at `path` unless one is there (another process may create it
    at the same moment: either is fine)."""
    if path.exists():
        return
    with contextlib.suppress(FileExistsError):
        os.close(create_file(path))


def ensure_folder(path: Path) -> Path:
    """`path` as a folder, created owner-only if it is new (its missing parents are ordinary
    folders). An existing folder keeps the mode its owner gave it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        path.mkdir(mode=FOLDER_MODE)
    except FileExistsError:
        return path
    os.chmod(path, FOLDER_MODE)
    return path
