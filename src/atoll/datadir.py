"""The data directory is private: the registry, series, broker auth files and keys live there.

``secure(home)`` makes ``home`` a 0700 directory and takes group and other permissions off
everything already in it (0700 directories, 0600 files), so an install made before this rule,
or files a library created with the process umask, are tightened on every start. The 0700
directory alone keeps other users out of files created later; ``atoll up`` also sets the umask
to 077 so those are 0600 too.

>>> import tempfile, pathlib
>>> home = pathlib.Path(tempfile.mkdtemp()) / "atoll"
>>> (home / "db").mkdir(parents=True, mode=0o755)
>>> (home / "db" / "x.sqlite").touch(mode=0o644)
>>> secure(home)  # home, db and x.sqlite
3
>>> oct(home.stat().st_mode & 0o777), oct((home / "db" / "x.sqlite").stat().st_mode & 0o777)
('0o700', '0o600')
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

log = logging.getLogger(__name__)

#: Permission bits no one but the owner may have on anything in the data directory.
_OTHERS = stat.S_IRWXG | stat.S_IRWXO
PRIVATE_UMASK = 0o077


def secure(home: Path) -> int:
    """Create ``home`` if needed and make it and its contents owner-only; returns how many changed.

    Symbolic links are neither followed nor changed (their targets are not ours to decide).
    A file that cannot be changed (another owner) is logged and left, rather than stopping a start.
    """
    home.mkdir(parents=True, exist_ok=True, mode=0o700)
    changed = _tighten(home)
    for root, dirs, files in os.walk(home):
        for name in dirs + files:
            changed += _tighten(Path(root) / name)
    if changed:
        log.info("made %d file(s) in %s private to their owner (0700/0600)", changed, home)
    return changed


def _tighten(path: Path) -> int:
    try:
        st = path.lstat()
    except FileNotFoundError:  # removed while we walked (a WAL checkpoint, a temp file)
        return 0
    if stat.S_ISLNK(st.st_mode) or not st.st_mode & _OTHERS:
        return 0
    try:
        path.chmod(stat.S_IMODE(st.st_mode) & ~_OTHERS)
    except OSError as e:
        log.warning("cannot make %s private (%s); other users may read it", path, e)
        return 0
    return 1
