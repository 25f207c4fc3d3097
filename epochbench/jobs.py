"""What every rule script does first: send its output to the rule's log file."""

import logging
import sys
import warnings


def log_to(path, mode: str = "w") -> logging.Logger:
    """Send stderr, warnings and the `epochbench` logger to the job's log file, one readable line each."""
    sys.stderr = open(path, mode, buffering=1)  # noqa: SIM115  (lives as long as the job)
    logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(message)s", force=True)
    logging.captureWarnings(True)
    warnings.filterwarnings("ignore", message=".*torch.jit.script.*deprecated", category=FutureWarning)
    return logging.getLogger("epochbench")
