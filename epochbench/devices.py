"""Which device a training job uses, and how jobs on one machine share its GPUs.

Snakemake's local executor counts GPUs (`--resources gpu=K`) but never tells a
job which one to use, so two jobs could land on the same device. Each CUDA job
therefore claims a device of its own with an exclusive, non-blocking `flock` on
a per-device lock file. The kernel drops the lock when the process ends, so a
killed job never leaves a device claimed. Lock files are named after the
device's UUID, not its index: under a cluster scheduler every job may see its
own GPU as `cuda:0`.
"""

import fcntl
import logging
import os
import tempfile
import time
from pathlib import Path

log = logging.getLogger("epochbench")

LOCK_DIR = Path(os.environ.get("EPOCHBENCH_GPU_LOCK_DIR", Path(tempfile.gettempdir()) / "epochbench-gpu-locks"))


class DeviceClaim:
    """An exclusive claim on one device, held until `release()` or the end of the process."""

    def __init__(self, index: int, key: str, handle):
        self.index, self.key, self._handle = index, key, handle

    def release(self) -> None:
        if self._handle is not None:
            fcntl.flock(self._handle, fcntl.LOCK_UN)
            self._handle.close()
            self._handle = None


def claim_device(keys: list, lock_dir=LOCK_DIR, timeout: float = 3600.0, poll: float = 1.0) -> DeviceClaim:
    """Claim the first free device among `keys` (one stable name per visible device), waiting while all are taken."""
    if not keys:
        raise ValueError("no devices to claim")
    lock_dir = Path(lock_dir)
    lock_dir.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + timeout
    while True:
        for index, key in enumerate(keys):
            handle = open(lock_dir / f"{key}.lock", "a+")  # noqa: SIM115  (kept open while the claim lasts)
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.close()
                continue
            handle.seek(0)
            handle.truncate()
            handle.write(f"{os.getpid()}\n")  # for a person looking at who holds it
            handle.flush()
            return DeviceClaim(index, key, handle)
        if time.monotonic() > deadline:
            raise TimeoutError(f"{lock_dir}: every device ({', '.join(keys)}) stayed claimed for {timeout:.0f} s")
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


def pick_device(choice: str = "auto"):
    """CPU, or a CUDA device this job has claimed for itself ('auto' uses CUDA when there is one)."""
    import torch

    global _claim
    if choice == "cpu" or (choice == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise RuntimeError("device: 'cuda' was asked for, but torch sees no CUDA device")
    if _claim is None:
        _claim = claim_device(cuda_device_keys())
        log.info("claimed cuda:%d (%s)", _claim.index, _claim.key)
    torch.cuda.set_device(_claim.index)
    return torch.device("cuda", _claim.index)
