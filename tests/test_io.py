"""Atomic writes: nothing half-written is left looking complete, a killed write's leftovers go, and modes follow the umask."""

import os
import stat
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from epochbench.io import atomic_path, write_csv, write_json, write_text


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "summary.csv"
    write_text(target, "old\n")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("killed")
    assert target.read_text() == "old\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["summary.csv"]


WRITER = """
import sys, time
from pathlib import Path
from epochbench.io import atomic_path
with atomic_path(sys.argv[1]) as tmp:
    Path(tmp).write_text("half")
    print(tmp, flush=True)
    time.sleep(300)
"""


def writer_in_flight(target):
    """(process, its temporary file) of another writer of `target`, stopped inside atomic_path."""
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(target)], stdout=subprocess.PIPE, text=True)
    return writer, Path(writer.stdout.readline().strip())


def test_the_next_write_removes_what_a_killed_write_left(tmp_path):
    target = tmp_path / "curve.png"
    killed, left_by_kill = writer_in_flight(target)
    killed.kill()  # SIGKILL runs no cleanup
    killed.wait()
    running, in_flight = writer_in_flight(target)
    other = tmp_path / left_by_kill.name.replace(".curve.", ".curve_2.")  # another target's: not ours to remove
    other.write_bytes(b"busy")
    try:
        assert left_by_kill.exists() and in_flight.exists()
        write_text(target, "new")
        assert target.read_text() == "new"
        assert not left_by_kill.exists() and other.exists()
        assert in_flight.exists(), "removed the temporary file of a writer still at work"
    finally:
        running.kill()
        running.wait()


def test_two_writers_of_one_target_keep_their_own_temporary_files(tmp_path):
    """Another writer finishing first (a second run, a SLURM job on a shared folder) takes nothing of this one's."""
    target = tmp_path / "summary.csv"
    with atomic_path(target) as mine:
        mine.write_text("mine\n")
        other = subprocess.run([sys.executable, "-c", f"from epochbench.io import write_text; "
                                                      f"write_text({str(target)!r}, 'theirs\\n')"],
                               capture_output=True, text=True, timeout=60)
        assert other.returncode == 0, other.stderr
        assert target.read_text() == "theirs\n"
        assert mine.exists(), "the other writer removed this writer's temporary file"
    assert target.read_text() == "mine\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["summary.csv"]


def test_a_result_is_on_disk_before_it_is_renamed_into_place(tmp_path, monkeypatch):
    """fsync of the file before the rename and of its folder after: a crash then loses no result."""
    events = []
    real_fsync, real_replace = os.fsync, os.replace
    monkeypatch.setattr(os, "fsync", lambda fd: (events.append(("fsync", os.readlink(f"/proc/self/fd/{fd}"))),
                                                 real_fsync(fd)))
    monkeypatch.setattr(os, "replace", lambda src, dst: (events.append(("replace", str(src), str(dst))),
                                                         real_replace(src, dst)))
    target = tmp_path / "metrics.json"
    with atomic_path(target) as tmp:
        tmp.write_text("{}")
    assert events == [("fsync", str(tmp)), ("replace", str(tmp), str(target)), ("fsync", str(tmp_path))]


@pytest.fixture(params=[0o022, 0o027], ids=["umask022", "umask027"])
def umask(request):
    old = os.umask(request.param)
    yield request.param
    os.umask(old)


def test_outputs_get_the_mode_a_plain_open_gives_under_the_umask(tmp_path, umask):
    plain = tmp_path / "plain.txt"
    with open(plain, "w") as handle:
        handle.write("x")
    expected = stat.S_IMODE(plain.stat().st_mode)
    assert expected == 0o666 & ~umask  # what "a plain open()" means here: 0644 under 022, 0640 under 027
    write_text(tmp_path / "index.html", "<html></html>")
    write_json(tmp_path / "metrics.json", {"n": 1})
    write_csv(tmp_path / "summary.csv", pd.DataFrame({"n": [1, 2]}))
    with atomic_path(tmp_path / "figure.svg") as tmp:
        tmp.write_text("<svg/>")
    for name in ("index.html", "metrics.json", "summary.csv", "figure.svg"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == expected, name
