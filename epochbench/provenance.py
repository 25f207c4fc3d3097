"""Which code made a result: the checkout's commit. Light (no pandas), for the report and the MLflow runs alike."""

import subprocess


def git_commit(workdir) -> str:
    try:
        commit = subprocess.run(
            ["git", "-C", str(workdir), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(workdir), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True, text=True, check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git checkout)"
    return commit + (" (with uncommitted changes)" if dirty else "")
