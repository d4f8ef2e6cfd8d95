"""A launch file running in the background: `rlvla launch` as a child process, stopped like Ctrl-C would."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path


class BackgroundLaunch:
    """Runs `rlvla launch <file> name:=value ...` with its output in `log_path`; a context manager.

    `stop()` sends SIGINT (the launch runner then stops its nodes as on Ctrl-C) and escalates to SIGTERM and SIGKILL
    of the whole process group if the runner has not exited in time.
    """

    def __init__(self, launch_file: str | Path, arguments: dict[str, str], log_path: str | Path) -> None:
        self.command = [sys.executable, "-m", "rlvla_ros.cli", "launch", str(launch_file),
                        *(f"{name}:={value}" for name, value in arguments.items())]
        self.log_path = Path(log_path)
        self.process: subprocess.Popen | None = None

    def start(self) -> BackgroundLaunch:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(self.command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                            start_new_session=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        return self

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, timeout_s: float = 30.0) -> int | None:
        """Stop the launch; returns its exit code (None if it was never started)."""
        if self.process is None:
            return None
        for sig, wait_s in ((signal.SIGINT, timeout_s), (signal.SIGTERM, 10.0), (signal.SIGKILL, 10.0)):
            if self.process.poll() is not None:
                break
            try:
                os.killpg(self.process.pid, sig) if sig != signal.SIGINT else self.process.send_signal(sig)
            except ProcessLookupError:
                break
            try:
                self.process.wait(wait_s)
            except subprocess.TimeoutExpired:
                continue
        return self.process.wait()

    def log_tail(self, lines: int = 40) -> str:
        """The last lines the launch printed (for error messages)."""
        if not self.log_path.is_file():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def __enter__(self) -> BackgroundLaunch:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()
