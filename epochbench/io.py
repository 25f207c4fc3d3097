"""Atomic file output: a killed job never leaves a half-written file that looks complete."""

import glob
import json
import os
import secrets
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_path(path):
    """Yield a temporary path beside `path`; rename it onto `path` only if the block succeeds.

    The temporary file lives in the same folder so that the rename is atomic
    (same file system) and keeps the real suffix so that libraries which pick
    a format from the suffix (matplotlib, numpy) still do the right thing.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _create_temporary(path)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    # A job killed mid-write (SIGKILL runs no cleanup) leaves its temporary file behind;
    # the write that replaces it removes it. The temporary names have 8 random characters.
    for stale in path.parent.glob(f".{glob.escape(path.stem)}.{'?' * 8}.tmp{glob.escape(path.suffix)}"):
        stale.unlink(missing_ok=True)


def _create_temporary(path: Path) -> str:
    """Create an empty, new file beside `path` with the mode a plain open() gives under the umask.

    Not tempfile.mkstemp: it creates mode 0600 whatever the umask, and the
    rename would carry that onto the output, leaving reports and tables readable
    by their owner alone. Asking for 0666 lets the kernel apply the umask (and a
    folder's default ACL) exactly as it does for open(path, "w").
    """
    while True:
        tmp = path.parent / f".{path.stem}.{secrets.token_hex(4)}.tmp{path.suffix}"
        try:
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666))
        except FileExistsError:
            continue
        return str(tmp)


def write_text(path, text: str) -> None:
    with atomic_path(path) as tmp:
        Path(tmp).write_text(text)


def write_json(path, obj) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def write_csv(path, frame) -> None:
    """Write a DataFrame as CSV with a fixed float format, so reruns give identical bytes."""
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False, float_format="%.8g")
