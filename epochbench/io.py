"""Atomic file output: a killed job never leaves a half-written file that looks complete."""

import errno
import glob
import hashlib
import json
import os
import re
import secrets
import socket
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_path(path):
    """Yield a temporary path beside `path`; rename it onto `path` only if the block succeeds.

    The temporary file lives in the same folder so that the rename is atomic
    (same file system) and keeps the real suffix so that libraries which pick
    a format from the suffix (matplotlib, numpy) still do the right thing.
    Its name is this writer's own (host, pid and a random part), so that two
    writers of one target (two runs, or SLURM jobs on a shared file system)
    never touch each other's. The file is flushed to disk before the rename, and
    the rename after it: a crash just after a job ends loses none of its results.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _create_temporary(path)
    try:
        yield Path(tmp)
        _fsync(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync(path.parent)
    _remove_dead_writers_temporaries(path)


def _fsync(path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)  # a folder too: that makes a rename in it last
    try:
        os.fsync(fd)
    except OSError as err:
        if err.errno != errno.EINVAL:  # EINVAL: a file system that cannot sync this (nothing to wait for)
            raise
    finally:
        os.close(fd)


# This machine, in temporary names: a pid tells whether a writer still lives only on its own machine.
HOST = hashlib.sha256(socket.gethostname().encode()).hexdigest()[:8]


def _temporary_name(path: Path, pid: str, token: str) -> str:
    return f".{path.stem}.{HOST}-{pid}-{token}.tmp{path.suffix}"


def _remove_dead_writers_temporaries(path: Path) -> None:
    """Remove what writers of `path` on this machine left when they were killed (SIGKILL runs no cleanup).

    A live writer's file, or one of another machine's (whose pid means nothing
    here), is left alone.
    """
    ours = re.compile(re.escape(f".{path.stem}.{HOST}-") + r"(\d+)-[0-9a-f]{8}" + re.escape(f".tmp{path.suffix}"))
    for leftover in path.parent.glob(f".{glob.escape(path.stem)}.{HOST}-*.tmp{glob.escape(path.suffix)}"):
        writer = ours.fullmatch(leftover.name)
        if writer and not _alive(int(writer.group(1))):
            leftover.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        pass
    return True


def _create_temporary(path: Path) -> str:
    """Create an empty, new file beside `path` with the mode a plain open() gives under the umask.

    Not tempfile.mkstemp: it creates mode 0600 whatever the umask, and the
    rename would carry that onto the output, leaving reports and tables readable
    by their owner alone. Asking for 0666 lets the kernel apply the umask (and a
    folder's default ACL) exactly as it does for open(path, "w").
    """
    while True:
        tmp = path.parent / _temporary_name(path, str(os.getpid()), secrets.token_hex(4))
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
