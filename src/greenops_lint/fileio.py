"""Writing files so that a reader never sees half of one, and so that a
rewrite never loses data.

`atomic_write`: the new content goes to a temporary file in the same
directory, is flushed to disk, takes the original's permission bits (and its
owner, where the process may set it), and replaces it with `os.replace`
(atomic on POSIX). If anything fails the original is untouched and the
temporary file is removed.

`rewrite_in_place` (what `--fix` and `--add-noqa` use) adds the checks that
keep a user's data safe:

- a symbolic link is followed: the file it points to is rewritten and the
  link stays a link (replacing the link itself would leave its target stale);
- a file that the permission bits do not let the user write (0444, or owned
  by someone else without group/other write) is skipped, even for root;
- just before the replace, the file is read again: if it was edited (its
  bytes differ from what was fixed) or deleted meanwhile, nothing is written
  and the temporary file is removed (a deleted file is never re-created).
Each skip raises `WriteSkipped` with a message for the user.
"""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path
from typing import Callable, Optional, Union


class WriteSkipped(Exception):
    """The file was deliberately left alone; the message says why."""


def atomic_write(
    path: Union[str, Path],
    data: Union[bytes, str],
    durable: bool = True,
    before_replace: Optional[Callable[[], None]] = None,
) -> None:
    """Replace `path` with `data`; `durable=False` skips the fsync (caches).
    `before_replace` runs after the temporary file is complete and just before
    the replace; an exception from it leaves the original untouched."""
    path = Path(path)
    payload = data.encode("utf-8") if isinstance(data, str) else data
    try:
        info: Optional[os.stat_result] = os.stat(path)
    except FileNotFoundError:
        info = None
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(payload)
            if durable:
                handle.flush()
                os.fsync(handle.fileno())
        if info is not None:
            os.chmod(tmp, stat.S_IMODE(info.st_mode))
            _keep_owner(tmp, info)
        if before_replace is not None:
            before_replace()
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def _keep_owner(tmp: str, info: os.stat_result) -> None:
    mine = os.stat(tmp)
    if (mine.st_uid, mine.st_gid) != (info.st_uid, info.st_gid):
        try:
            os.chown(tmp, info.st_uid, info.st_gid)
        except OSError:
            pass  # not allowed (not root): the file gets the writer's ids, as any editor does


def may_write(info: os.stat_result, path: str) -> bool:
    """Do the permission bits let this user write the file? Root passes any
    access check, so for root a file without a single write bit (0444) counts
    as read-only too."""
    if not os.access(path, os.W_OK):
        return False
    if os.geteuid() == 0:
        return bool(info.st_mode & 0o222)
    return True


def rewrite_in_place(path: Union[str, Path], original: bytes, data: bytes, durable: bool = True) -> None:
    """Replace the file at `path`, whose content was `original`, with `data`
    (see the module docstring); raises `WriteSkipped` or `OSError`."""
    target = os.path.realpath(path)  # a symlink: write its target, keep the link
    try:
        info = os.stat(target)
    except FileNotFoundError:
        raise WriteSkipped("the file was deleted while it was being fixed; it was not re-created") from None
    if not stat.S_ISREG(info.st_mode):
        raise WriteSkipped("not a regular file; left unchanged")
    if not may_write(info, target):
        raise WriteSkipped("the file is read-only for you; left unchanged")

    def unchanged() -> None:
        try:
            now = os.stat(target)
            with open(target, "rb") as handle:
                current = handle.read()
        except FileNotFoundError:
            raise WriteSkipped("the file was deleted while it was being fixed; it was not re-created") from None
        if (now.st_dev, now.st_ino) != (info.st_dev, info.st_ino) or current != original:
            raise WriteSkipped("the file changed while it was being fixed; left as it is now (run again)")

    atomic_write(target, data, durable, before_replace=unchanged)
