"""Data from the network: fetched under a lock, checked before use, unpacked only inside its own folder.

A dataset URL may be a mirror or a `file://` archive that someone else made, and
an archive member named `x/../../etc/...` or `/etc/...` would otherwise be written
wherever it points (fastai's `untar_data` unpacks with `shutil.unpack_archive`,
which does not stop it). So archives are unpacked here: tar with `tarfile`'s
`data` filter (PEP 706: no member outside the folder, no links out of it, no
device files), zip with the same check on every member name, and an optional
SHA-256 (`dataset.sha256`) is checked before anything is unpacked.
"""

import contextlib
import fcntl
import hashlib
import os
import shutil
import tarfile
import tempfile
import urllib.request
import zipfile
from pathlib import Path

from .datasets import DataError
from .io import atomic_path
from .redact import redact_credentials

DOWNLOAD_TIMEOUT = 60  # seconds without a byte before a download is given up


@contextlib.contextmanager
def locked(path):
    """Hold an exclusive lock on `path` (created if need be): one downloader at a time, the others wait."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def sha256_of(path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(2**20):
            digest.update(chunk)
    return digest.hexdigest()


def download(url: str, dest, check=None) -> None:
    """Fetch `url` to `dest` through a temporary name of this writer's own; `check(tmp)` (raising DataError) first."""
    try:
        with atomic_path(dest) as tmp, urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT) as response, \
                open(tmp, "wb") as out:
            shutil.copyfileobj(response, out)
            out.close()
            if check is not None:
                check(tmp)
    except OSError as err:  # URLError and HTTPError are OSErrors
        raise DataError(f"{redact_credentials(url)}: download failed ({getattr(err, 'reason', err)})") from None


def fetch_archive(url: str, sha256=None, base=None) -> Path:
    """fastai's `untar_data(url, base=base)`, unpacked safely: the same folders and, for fastai's own URLs, its checks.

    With `sha256`, the archive must have that digest before it is unpacked, and
    every time it is used.
    """
    import fastai.data
    from fastai.data.external import fastai_cfg
    from fastdownload import FastDownload
    from fastdownload.core import urldest

    shown = redact_credentials(url)  # for messages, which end up in logs
    fetcher = FastDownload(fastai_cfg() if base is None else None, module=fastai.data, base=base or "~/.fastai")
    fetcher.arch_path().mkdir(parents=True, exist_ok=True)
    archive = urldest(url, fetcher.arch_path())
    data_dir = fetcher.data_path("data", archive)
    # fastdownload locks the same file around its own downloads: the two never download at once.
    with locked(archive.with_name(archive.name + ".lock")):
        if data_dir.exists() and sha256 is None:
            return data_dir
        archive = fetcher.download(url)  # a file already there is kept (fastai checks its own URLs' size and md5)
        if sha256 is not None:
            actual = sha256_of(archive)
            if actual != sha256.lower():
                raise DataError(f"dataset.url {shown}: {archive} has SHA-256 {actual}, not dataset.sha256 {sha256}; "
                                f"not unpacked (delete it to download again)")
        if not data_dir.exists():
            data_dir.parent.mkdir(parents=True, exist_ok=True)
            extract_archive(archive, data_dir, source=f"{archive} (from {shown})")
    return data_dir


def extract_archive(archive, dest, source=None) -> None:
    """Unpack `archive` into the new folder `dest` as `untar_data` lays it out (a single top folder becomes `dest`).

    A member that would land outside the folder stops it, with one line naming
    the archive (`source`, by default its path) and the member; nothing of it is left at `dest` then.
    """
    archive, dest = Path(archive), Path(dest)
    source = source or str(archive)
    with tempfile.TemporaryDirectory(prefix=f".{dest.name}.", dir=dest.parent) as scratch:
        out = Path(scratch) / "unpacked"
        out.mkdir()
        if zipfile.is_zipfile(archive):
            _unzip(archive, out, source)
        else:
            _untar(archive, out, source)
        items = list(out.iterdir())
        os.replace(items[0] if len(items) == 1 and items[0].is_dir() else out, dest)


def _data_filter(member, path):
    """tarfile's `data` filter, which would strip the slash off an absolute name and unpack it: refused here."""
    if member.name.startswith("/"):
        raise tarfile.AbsolutePathError(member)
    return tarfile.data_filter(member, path)


def _untar(archive: Path, out: Path, source: str) -> None:
    if not hasattr(tarfile, "data_filter"):  # Python before 3.10.12 / 3.11.4 has no extraction filters
        raise DataError(f"{source}: this Python cannot unpack a tar archive safely (no tarfile data filter); "
                        f"use Python 3.11.4 or later")
    try:
        with tarfile.open(archive) as tar:
            tar.extractall(out, filter=_data_filter)
    except tarfile.FilterError as err:  # what the data filter refuses, in words
        refused = [(tarfile.AbsolutePathError, "has an absolute path"),
                   (tarfile.OutsideDestinationError, "would be unpacked outside its folder"),
                   ((tarfile.AbsoluteLinkError, tarfile.LinkOutsideDestinationError), "is a link out of its folder"),
                   (tarfile.SpecialFileError, "is a device or other special file")]
        why = next((words for kind, words in refused if isinstance(err, kind)), str(err))
        raise DataError(f"{source}: member {err.tarinfo.name!r} {why}; not unpacked") from None
    except (tarfile.TarError, EOFError, OSError) as err:
        raise DataError(f"{source}: cannot unpack ({type(err).__name__}: {err})") from None


def _unzip(archive: Path, out: Path, source: str) -> None:
    root = os.path.realpath(out)
    with zipfile.ZipFile(archive) as zipped:
        for member in zipped.infolist():
            # zipfile itself would quietly rewrite such a name; refuse it as tarfile's filter does.
            target = os.path.realpath(os.path.join(root, member.filename))
            if os.path.isabs(member.filename):
                raise DataError(f"{source}: member {member.filename!r} has an absolute path; not unpacked")
            if os.path.commonpath([root, target]) != root:
                raise DataError(f"{source}: member {member.filename!r} would be unpacked outside its folder; "
                                f"not unpacked")
        zipped.extractall(out)
