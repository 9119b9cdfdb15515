"""Blocking driver for ``ndsctl``: run a call through a runner, retrying while the lock is held.

The retry policy lives in :class:`meshcore.fairness.opennds.NdsctlCall`
(sans-I/O); this module is the thin I/O side: :func:`subprocess_runner` runs
the real binary, :func:`run_ndsctl` loops over a runner with a sleep
function, so tests pass a fake runner and a fake sleep and never need
openNDS.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable

from .opennds import CallDone, CallFailed, NdsctlCall, Retry, Runner

__all__ = ["run_ndsctl", "subprocess_runner"]


def subprocess_runner(argv: list[str], *, timeout: float = 10.0) -> tuple[int, str, str]:
    """Run ``argv``; ``(exit code, stdout, stderr)``. A missing binary or a timeout is
    reported as exit 127 / 124 with the reason in stderr (never raises)."""
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    except FileNotFoundError as exc:
        return 127, "", f"{argv[0]}: not found ({exc.strerror})"
    except subprocess.TimeoutExpired:
        return 124, "", f"{argv[0]}: timed out after {timeout} s"
    return proc.returncode, proc.stdout, proc.stderr


def run_ndsctl(
    call: NdsctlCall,
    runner: Runner = subprocess_runner,
    *,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> CallDone | CallFailed:
    """Run ``call`` to completion, sleeping between retries; the final step."""
    while True:
        code, out, err = runner(call.argv)
        step = call.on_result(code, out, err, now=clock())
        if isinstance(step, Retry):
            sleep(max(0.0, step.at - clock()))
            continue
        return step
