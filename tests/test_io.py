"""Atomic writes: nothing half-written is left looking complete, a killed write's leftovers go, and modes follow the umask."""

import os
import stat

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


def test_the_next_write_removes_what_a_killed_write_left(tmp_path):
    target = tmp_path / "curve.png"
    left_by_kill = tmp_path / ".curve.ab12cd34.tmp.png"  # SIGKILL runs no cleanup
    left_by_kill.write_bytes(b"half")
    other = tmp_path / ".curve_2.ab12cd34.tmp.png"  # another target's temporary file: not ours to remove
    other.write_bytes(b"busy")
    write_text(target, "new")
    assert target.read_text() == "new"
    assert not left_by_kill.exists() and other.exists()


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
