"""A folder only this user can enter, for the warm server's socket and the GPU claims.

Anything at a predictable path in the shared temp folder can be created first
by another local user: a socket there could collect a job's environment
(tokens included) and answer in the server's place. So these files live in
`$XDG_RUNTIME_DIR` (systemd's per-user /run/user/<uid>, mode 0700) where that
is usable, else in a per-user folder under the temp folder. That folder is
checked with `lstat` before use (a real folder, not a symlink, owned by us,
mode 0700), never assumed: another user may have made it first.
"""

import os
import stat
import tempfile
from pathlib import Path

NAME = "epochbench"


def _private(st: os.stat_result) -> bool:
    return stat.S_ISDIR(st.st_mode) and st.st_uid == os.getuid() and not st.st_mode & 0o077


def user_dir() -> Path:
    """This user's private epochbench folder, created if need be; PermissionError (one line) if it is unsafe."""
    xdg = os.environ.get("XDG_RUNTIME_DIR")
    if xdg and os.path.isabs(xdg):
        try:
            usable = _private(os.lstat(xdg))
        except OSError:
            usable = False
        base, name = (Path(xdg), NAME) if usable else (Path(tempfile.gettempdir()), f"{NAME}-{os.getuid()}")
    else:
        base, name = Path(tempfile.gettempdir()), f"{NAME}-{os.getuid()}"
    path = base / name
    try:
        path.mkdir(mode=0o700)
    except FileExistsError:
        pass
    st = os.lstat(path)
    if not _private(st):
        kind = "a symlink" if stat.S_ISLNK(st.st_mode) else "a folder" if stat.S_ISDIR(st.st_mode) else "not a folder"
        raise PermissionError(
            f"{path}: is {kind} owned by uid {st.st_uid} with mode {stat.S_IMODE(st.st_mode):04o}, not a private "
            f"folder of uid {os.getuid()} (mode 0700); remove it or set XDG_RUNTIME_DIR to a folder of your own"
        )
    return path


def remove_if_empty(path) -> None:
    """Remove the folder if nothing is left in it (another server's or claim's files keep it)."""
    try:
        os.rmdir(path)
    except OSError:
        pass
