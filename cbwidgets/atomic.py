"""Writing files so that a failure loses nothing: a temporary name in the same folder, then a rename.

A reader (or a later load) sees the old file or the new one, never half of one, and a failed write
(a full disk, a folder that is read-only, an interrupt) leaves no temporary file behind. Errors the
user can fix are raised as CodebookError naming the path and the fix.
"""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .errors import CodebookError

__all__ = ["atomic_file", "atomic_folder", "writing"]

_FIXES = {
    errno.ENOSPC: "the disk is full; free some space or save somewhere else",
    errno.EDQUOT: "the disk quota is used up; free some space or save somewhere else",
    errno.EACCES: "this user may not write there; choose a folder you own",
    errno.EPERM: "this user may not write there; choose a folder you own",
    errno.EROFS: "the file system is read-only; choose a writable folder",
}


@contextmanager
def writing(path: Path) -> Iterator[None]:
    """Turn the OSErrors a user can fix (disk full, no permission, read-only) into a CodebookError."""
    try:
        yield
    except OSError as err:
        fix = _FIXES.get(err.errno or -1)
        if fix is None:
            raise
        raise CodebookError(f"could not write {str(path)!r}: {err.strerror or err}; {fix}.") from err


def _make_parent(path: Path) -> None:
    with writing(path):
        path.parent.mkdir(parents=True, exist_ok=True)


@contextmanager
def atomic_file(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; when the block succeeds it replaces ``path`` in one rename."""
    path = Path(path)
    _make_parent(path)
    with writing(path):
        handle, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(handle)
    temporary = Path(name)
    try:
        with writing(path):
            yield temporary
            os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


@contextmanager
def atomic_folder(path: str | Path) -> Iterator[Path]:
    """Yield a temporary folder beside ``path``; when the block succeeds it takes ``path``'s place
    (an older folder there is removed only after the new one is in place)."""
    path = Path(path)
    _make_parent(path)
    with writing(path):
        temporary = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    old = path.with_name(f".{path.name}.old-{os.getpid()}")
    done = False
    try:
        with writing(path):
            yield temporary
            moved = path.exists()
            if moved:
                os.replace(path, old)
            try:
                os.replace(temporary, path)
            except BaseException:
                if moved:
                    os.replace(old, path)  # the old folder back where it was
                raise
            done = True
    finally:
        shutil.rmtree(temporary, ignore_errors=True)
        if done:
            shutil.rmtree(old, ignore_errors=True)
