"""Atomic file output: a killed job never leaves a half-written file that looks complete."""

import glob
import json
import os
import tempfile
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
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}")
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    # A job killed mid-write (SIGKILL runs no cleanup) leaves its temporary file behind;
    # the write that replaces it removes it. mkstemp's names have 8 random characters.
    for stale in path.parent.glob(f".{glob.escape(path.stem)}.{'?' * 8}.tmp{glob.escape(path.suffix)}"):
        stale.unlink(missing_ok=True)


def write_text(path, text: str) -> None:
    with atomic_path(path) as tmp:
        Path(tmp).write_text(text)


def write_json(path, obj) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def write_csv(path, frame) -> None:
    """Write a DataFrame as CSV with a fixed float format, so reruns give identical bytes."""
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False, float_format="%.8g")
