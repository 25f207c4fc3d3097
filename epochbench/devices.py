"""Which device a training job uses, and how jobs on one machine share its GPUs.

Snakemake's local executor counts GPUs (`--resources gpu=K`) but never tells a
job which one to use, so two jobs could land on the same device. Each CUDA job
therefore claims a device of its own with an exclusive, non-blocking `flock` on
a per-device lock file. The kernel drops the lock when the process ends, so a
killed job never leaves a device claimed. Lock files are named after the
device's UUID, not its index: under a cluster scheduler every job may see its
own GPU as `cuda:0`.

A device offers `slots` claims (the config's `jobs_per_gpu`, default 1), one
lock file each, so that several small jobs can share one GPU. Slot 0 keeps the
plain `<key>.lock` name, so one slot per device claims exactly what it always
did; runs that share a device should use the same number of slots.

Lock files live in this user's private folder (`epochbench.userdir`), so no
other user can create, hold or block them: claims share the GPUs among one
user's jobs. A folder named by `EPOCHBENCH_GPU_LOCK_DIR` is checked the same
way (a real folder of ours, mode 0700), and a lock file is never opened through
a symlink (the pid written into it would overwrite whatever it points at).

The claim is held on a descriptor that no other process keeps: it is
close-on-exec, and closed in every forked child (DataLoader workers are forks),
because a `flock` lasts as long as any copy of its descriptor. Without that, a
killed job's claim would outlive it in its workers.
"""

import errno
import fcntl
import logging
import os
import time
import weakref
from pathlib import Path

from .userdir import private_folder, user_dir

LOCK_DIR_HINT = "set EPOCHBENCH_GPU_LOCK_DIR to a folder of your own"

log = logging.getLogger("epochbench")


def default_lock_dir() -> Path:
    """Where the claims' lock files live: `EPOCHBENCH_GPU_LOCK_DIR`, else this user's private folder."""
    override = os.environ.get("EPOCHBENCH_GPU_LOCK_DIR")
    return Path(override) if override else user_dir() / "gpu-locks"


class DeviceClaim:
    """An exclusive claim on one slot of one device, held until `release()` or the end of the process."""

    def __init__(self, index: int, key: str, fd: int, slot: int = 0):
        self.index, self.key, self.slot, self._fd = index, key, slot, fd
        _held.add(self)

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def _drop_in_child(self) -> None:
        # Close the child's copy only: LOCK_UN here would release the parent's claim too.
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


_held = weakref.WeakSet()  # every claim of this process, for the fork hook below


def _drop_claims_in_child() -> None:
    for claim in list(_held):
        claim._drop_in_child()


os.register_at_fork(after_in_child=_drop_claims_in_child)


def _open_lock(path: Path) -> int:
    try:
        return os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o644)
    except OSError as err:
        why = "a symlink, not followed" if err.errno == errno.ELOOP else err.strerror
        raise PermissionError(f"{path}: cannot open the GPU claim file ({why}); {LOCK_DIR_HINT}") from None


def slot_lock_name(key: str, slot: int) -> str:
    """The lock file of one slot of a device: `<key>.lock` for slot 0, `<key>.slot<i>.lock` after it."""
    return f"{key}.lock" if slot == 0 else f"{key}.slot{slot}.lock"


def check_slots(slots) -> None:
    """Raise ValueError unless `slots` is a whole number >= 1 (a bool or 2.0 is not: they would miscount locks)."""
    if isinstance(slots, bool) or not isinstance(slots, int) or slots < 1:
        raise ValueError(f"slots per device must be a whole number >= 1 (got {slots!r})")


def _make_lock_dir(lock_dir: Path) -> None:
    """Create the claims folder if need be, and refuse it unless only this user can enter it."""
    try:
        lock_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    except PermissionError as err:
        raise PermissionError(f"{lock_dir}: cannot create the GPU claims folder ({err.strerror}); "
                              f"{LOCK_DIR_HINT}") from None
    private_folder(lock_dir, LOCK_DIR_HINT)


def _try_lock(path: Path) -> "int | None":
    """The descriptor of `path` with an exclusive lock on it, or None if another process holds it."""
    fd = _open_lock(path)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)  # for a person looking at who holds it
    return fd


def claim_device(keys: list, lock_dir=None, timeout: float = 3600.0, poll: float = 1.0,
                 slots: int = 1) -> DeviceClaim:
    """Claim a free slot among `keys` (one stable name per visible device), `slots` per device, waiting while all are taken.

    Slot 0 of every device is tried before slot 1 of any, so that jobs spread
    over the devices before they share one.
    """
    if not keys:
        raise ValueError("no devices to claim")
    check_slots(slots)
    lock_dir = Path(lock_dir) if lock_dir is not None else default_lock_dir()
    _make_lock_dir(lock_dir)
    deadline = time.monotonic() + timeout
    while True:
        for slot in range(slots):
            for index, key in enumerate(keys):
                fd = _try_lock(lock_dir / slot_lock_name(key, slot))
                if fd is not None:
                    return DeviceClaim(index, key, fd, slot)
        if time.monotonic() > deadline:
            raise TimeoutError(f"{lock_dir}: every slot ({slots} per device) of every device ({', '.join(keys)}) "
                               f"stayed claimed for {timeout:.0f} s")
        time.sleep(poll)


def cuda_device_keys() -> list:
    """A stable name for every visible CUDA device (its UUID where torch reports one)."""
    import torch

    keys = []
    for i in range(torch.cuda.device_count()):
        uuid = getattr(torch.cuda.get_device_properties(i), "uuid", None)
        keys.append(f"gpu-{uuid}" if uuid is not None else f"gpu-index{i}")
    return keys


_claim = None  # the job's claim lives as long as the job


def pick_device(choice: str = "auto", jobs_per_gpu: int = 1):
    """CPU, or a CUDA device this job has claimed one of `jobs_per_gpu` slots of ('auto' uses CUDA when there is one)."""
    import torch

    global _claim
    if choice == "cpu" or (choice == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise RuntimeError("device: 'cuda' was asked for, but torch sees no CUDA device")
    if _claim is None:
        _claim = claim_device(cuda_device_keys(), slots=jobs_per_gpu)
        log.info("claimed cuda:%d (%s), slot %d of %d", _claim.index, _claim.key, _claim.slot + 1, jobs_per_gpu)
    torch.cuda.set_device(_claim.index)
    return torch.device("cuda", _claim.index)
