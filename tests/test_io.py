"""Atomic writes: nothing half-written is left looking complete, and a killed write's leftovers go."""

import pytest

from epochbench.io import atomic_path, write_text


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
