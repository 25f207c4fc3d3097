"""A folder only this user can enter, for the warm server's socket and the GPU claims.

Anything at a predictable path in the shared temp folder can be created first
by another local user: a socket there could collect a job's environment
(tokens included) and answer in the server's place, and a folder there taken
first would stop every job. So these files live in `$XDG_RUNTIME_DIR`
(systemd's per-user /run/user/<uid>, mode 0700) where that is usable, else
under the user's own cache folder (`$XDG_CACHE_HOME`, or ~/.cache, where that is
the user's), and only for a user with neither in a per-user folder under the
temp folder. Whichever it is, the folder is checked with `lstat` before use (a
real folder, not a symlink, owned by us, mode 0700), never assumed: another user
may have made it first.
"""

import os
import stat
import tempfile
from pathlib import Path

NAME = "epochbench"


def _private(st: os.stat_result) -> bool:
    return stat.S_ISDIR(st.st_mode) and st.st_uid == os.getuid() and not st.st_mode & 0o077


def private_folder(path, hint: str) -> Path:
    """`path`, created (mode 0700) if need be; PermissionError (one line, ending in `hint`) unless it is private."""
    path = Path(path)
    try:
        path.mkdir(mode=0o700)
    except FileExistsError:
        pass
    st = os.lstat(path)
    if not _private(st):
        kind = "a symlink" if stat.S_ISLNK(st.st_mode) else "a folder" if stat.S_ISDIR(st.st_mode) else "not a folder"
        raise PermissionError(
            f"{path}: is {kind} owned by uid {st.st_uid} with mode {stat.S_IMODE(st.st_mode):04o}, not a private "
            f"folder of uid {os.getuid()} (mode 0700); {hint}"
        )
    return path


def _owned_folder(path) -> bool:
    """Whether `path` is a folder of this user's (followed: a cache folder may well be a link to scratch space)."""
    try:
        st = os.stat(path)
    except OSError:
        return False
    return stat.S_ISDIR(st.st_mode) and st.st_uid == os.getuid()


def _cache_base() -> "Path | None":
    """This user's cache folder, made if need be, where the user owns it (under sudo, $HOME may be another's)."""
    cache = os.environ.get("XDG_CACHE_HOME")
    if not (cache and os.path.isabs(cache)):
        home = os.path.expanduser("~")
        if not (os.path.isabs(home) and _owned_folder(home)):
            return None
        cache = os.path.join(home, ".cache")
    try:
        os.makedirs(cache, mode=0o700, exist_ok=True)
    except OSError:
        return None
    return Path(cache) if _owned_folder(cache) else None


def user_dir() -> Path:
    """This user's private epochbench folder, created if need be; PermissionError (one line) if it is unsafe."""
    xdg = os.environ.get("XDG_RUNTIME_DIR")
    try:
        runtime = bool(xdg) and os.path.isabs(xdg) and _private(os.lstat(xdg))
    except OSError:
        runtime = False
    hint = "remove it or set XDG_RUNTIME_DIR to a folder of your own"
    if runtime:
        return private_folder(Path(xdg) / NAME, hint)
    cache = _cache_base()
    if cache is not None:
        return private_folder(cache / f"{NAME}-run", hint)
    return private_folder(Path(tempfile.gettempdir()) / f"{NAME}-{os.getuid()}", hint)


def remove_if_empty(path) -> None:
    """Remove the folder if nothing is left in it (another server's or claim's files keep it)."""
    try:
        os.rmdir(path)
    except OSError:
        pass
