"""The local data directory (``$IMAPLESS_DATA_DIR``, default ``./.data``) and its files.

Everything ``make run`` must keep between runs lives here: the DynamoDB snapshot, the
admin token, the key file of ``IMAPLESS_KEY_PROVIDER=local``. These are secrets in a
developer's checkout, so:

- the directory is created ``0700`` and files are written ``0600`` (an existing directory
  with group/other access is left alone but reported: it may be shared on purpose);
- files are replaced atomically: write ``.<name>.<pid>.tmp`` in the same directory,
  fsync it, rename it over the target, fsync the directory. A reader (or the next start
  after a crash) sees the old content or the new one, never half of either. A temp file
  orphaned by a crash is removed by :func:`discard_partial_writes`.
"""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Mapping
from pathlib import Path

DATA_DIR_ENV = "IMAPLESS_DATA_DIR"
DEFAULT_DATA_DIR = "./.data"
PRIVATE_DIR_MODE = 0o700
PRIVATE_FILE_MODE = 0o600

logger = logging.getLogger(__name__)


def resolve_data_dir(environ: Mapping[str, str] = os.environ) -> Path:
    """The absolute data directory named by ``IMAPLESS_DATA_DIR`` (relative to the cwd)."""
    return Path(environ.get(DATA_DIR_ENV) or DEFAULT_DATA_DIR).expanduser().resolve()


def ensure_private_dir(path: Path) -> Path:
    """Create ``path`` (and parents) as a ``0700`` directory if missing; return it."""
    if not path.is_dir():
        path.mkdir(mode=PRIVATE_DIR_MODE, parents=True, exist_ok=True)
        os.chmod(path, PRIVATE_DIR_MODE)  # mkdir's mode is filtered through the umask
    elif stat.S_IMODE(path.stat().st_mode) & 0o077:
        logger.warning("data dir %s is accessible to other users (mode %o); it holds secrets",
                       path, stat.S_IMODE(path.stat().st_mode))
    return path


def write_private_file(path: Path, data: bytes) -> None:
    """Atomically replace ``path`` with ``data`` as a ``0600`` file (see module docstring)."""
    temp_path = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(temp_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, PRIVATE_FILE_MODE)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temp_path, PRIVATE_FILE_MODE)  # O_CREAT's mode is filtered through the umask
        os.replace(temp_path, path)
    except BaseException:
        temp_path.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def discard_partial_writes(path: Path) -> None:
    """Remove temp files that a killed :func:`write_private_file` left next to ``path``."""
    for leftover in path.parent.glob(f".{path.name}.*.tmp"):
        leftover.unlink(missing_ok=True)


def _fsync_dir(directory: Path) -> None:
    # The rename is only durable once the directory entry is on disk.
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
