"""Run node processes as `ros2 launch` does: prefixed output, respawn, and an orderly shutdown.

Shutdown (first SIGINT or SIGTERM to the runner): every running process gets SIGINT, then SIGTERM after its
`sigterm_timeout_s`, then SIGKILL after a further `sigkill_timeout_s`, like launch's ExecuteProcess. Each process
runs in its own process group (signals reach the helpers it forks, and the terminal's Ctrl-C reaches the runner
only, so every node gets exactly one SIGINT) and, on Linux, gets SIGTERM from the kernel if the runner itself dies,
even by SIGKILL. The runner returns when no process is running and none is waiting to respawn.
"""

import ctypes
import os
import selectors
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TextIO

from rlvla_ros.launching.plan import ProcessSpec

_PR_SET_PDEATHSIG = 1
_POLL_PERIOD_S = 0.1  # how often exits are checked; also bounds the latency of respawns and escalation


def _die_with_parent() -> Callable[[], None] | None:
    """A Popen preexec_fn asking Linux to send SIGTERM to the child when the runner dies."""
    if not sys.platform.startswith("linux"):
        return None
    libc = ctypes.CDLL(None, use_errno=True)
    parent_pid = os.getpid()

    def preexec() -> None:
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent_pid:  # the runner died before prctl took effect
            os._exit(1)

    return preexec


@dataclass
class _Process:
    spec: ProcessSpec
    popen: subprocess.Popen | None = None
    respawns: int = 0
    respawn_at: float | None = None
    sigterm_at: float | None = None
    sigkill_at: float | None = None
    pending: dict[str, bytes] = field(default_factory=dict)


class Supervisor:
    """Starts `processes`, relays their output and supervises them until all are done."""

    def __init__(self, processes: list[ProcessSpec], screen: TextIO, log: TextIO | None = None) -> None:
        self._processes = [_Process(spec) for spec in processes]
        self._screen = screen
        self._log = log
        self._selector = selectors.DefaultSelector()
        self._preexec = _die_with_parent()
        self._signals: list[int] = []
        self._shutting_down = False
        self._failed = False

    def run(self) -> int:
        """Supervise until every process is done; 0 unless a process failed before shutdown was requested."""
        restore_signals = self._install_signal_handlers()
        try:
            for process in self._processes:
                self._start(process)
            while any(p.popen is not None or p.respawn_at is not None for p in self._processes):
                for key, _ in self._selector.select(self._timeout_s()):
                    self._read(key)
                self._handle_signals()
                self._reap()
                self._escalate()
                self._respawn()
            return 1 if self._failed else 0
        finally:
            for process in self._processes:
                if process.popen is not None:
                    self._signal(process, signal.SIGKILL)
                    process.popen.wait()
                    self._close_pipes(process)
            restore_signals()
            self._selector.close()

    def _install_signal_handlers(self) -> Callable[[], None]:
        if threading.current_thread() is not threading.main_thread():
            return lambda: None  # signal handlers can only be set from the main thread
        read_fd, write_fd = os.pipe()
        os.set_blocking(read_fd, False)
        os.set_blocking(write_fd, False)
        self._selector.register(read_fd, selectors.EVENT_READ, None)
        previous_fd = signal.set_wakeup_fd(write_fd, warn_on_full_buffer=False)
        previous = {signum: signal.signal(signum, lambda number, _frame: self._signals.append(number))
                    for signum in (signal.SIGINT, signal.SIGTERM)}

        def restore() -> None:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
            signal.set_wakeup_fd(previous_fd)
            self._selector.unregister(read_fd)
            os.close(read_fd)
            os.close(write_fd)

        return restore

    def _timeout_s(self) -> float:
        now = time.monotonic()
        deadlines = [t for p in self._processes for t in (p.respawn_at, p.sigterm_at, p.sigkill_at) if t is not None]
        return max(0.0, min([_POLL_PERIOD_S] + [t - now for t in deadlines]))

    def _message(self, level: str, label: str, text: str) -> None:
        line = f"[{level}] [{label}]: {text}"
        self._screen.write(line + "\n")
        self._screen.flush()
        if self._log is not None:
            self._log.write(f"{time.time():.7f} {line}\n")
            self._log.flush()

    def _start(self, process: _Process) -> None:
        spec = process.spec
        try:
            popen = subprocess.Popen(
                spec.cmd, env=spec.env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                process_group=0, preexec_fn=self._preexec)
        except OSError as error:
            self._message("ERROR", spec.label, f"exception occurred while executing process: {error}")
            self._failed = True
            return
        process.popen = popen
        for stream_name, pipe in (("stdout", popen.stdout), ("stderr", popen.stderr)):
            os.set_blocking(pipe.fileno(), False)
            self._selector.register(pipe, selectors.EVENT_READ, (process, stream_name))
        self._message("INFO", spec.label, f"process started with pid [{popen.pid}]")

    def _read(self, key: selectors.SelectorKey) -> None:
        if key.data is None:  # the signal wakeup pipe: empty it, the handler already recorded the signal
            try:
                while os.read(key.fd, 512):
                    pass
            except BlockingIOError:
                pass
            return
        process, stream_name = key.data
        if not self._pump(process, stream_name, key.fd):
            self._selector.unregister(key.fileobj)
            self._flush_partial(process, stream_name)

    def _pump(self, process: _Process, stream_name: str, fd: int) -> bool:
        """Relay the complete lines that can be read now from one output pipe; False at end of file."""
        while True:
            try:
                data = os.read(fd, 65536)
            except BlockingIOError:
                return True
            if not data:
                return False
            lines = (process.pending.get(stream_name, b"") + data).split(b"\n")
            process.pending[stream_name] = lines.pop()
            for line in lines:
                self._emit(process, stream_name, line.decode(errors="replace"))

    def _emit(self, process: _Process, stream_name: str, line: str) -> None:
        """Route one output line: 'screen' shows both streams, 'log' logs both and shows stderr, 'both' does both."""
        mode = process.spec.output
        text = f"[{process.spec.label}] {line}"
        if mode in ("screen", "both") or stream_name == "stderr":
            self._screen.write(text + "\n")
            self._screen.flush()
        if mode in ("log", "both") and self._log is not None:
            self._log.write(f"{time.time():.7f} {text}\n")
            self._log.flush()

    def _flush_partial(self, process: _Process, stream_name: str) -> None:
        rest = process.pending.pop(stream_name, b"")
        if rest:
            self._emit(process, stream_name, rest.decode(errors="replace"))

    def _close_pipes(self, process: _Process) -> None:
        """Relay what is left in the pipes of an exited process, then close them."""
        for stream_name, pipe in (("stdout", process.popen.stdout), ("stderr", process.popen.stderr)):
            if pipe in self._selector.get_map():
                self._pump(process, stream_name, pipe.fileno())
                self._selector.unregister(pipe)
            self._flush_partial(process, stream_name)
            pipe.close()

    def _handle_signals(self) -> None:
        while self._signals:
            name = signal.Signals(self._signals.pop(0)).name
            if self._shutting_down:
                self._message("WARNING", "launch", f"{name} received again, shutdown already in progress")
                continue
            self._message("WARNING", "launch", f"{name} received, shutting down")
            self._shutting_down = True
            now = time.monotonic()
            for process in self._processes:
                process.respawn_at = None
                if process.popen is not None:
                    label = process.spec.label
                    self._message("INFO", label, f"sending signal 'SIGINT' to process[{label}]")
                    self._signal(process, signal.SIGINT)
                    process.sigterm_at = now + process.spec.sigterm_timeout_s
                    process.sigkill_at = process.sigterm_at + process.spec.sigkill_timeout_s

    @staticmethod
    def _signal(process: _Process, signum: int) -> None:
        try:
            os.killpg(process.popen.pid, signum)
        except (ProcessLookupError, PermissionError):
            pass  # already gone

    def _reap(self) -> None:
        for process in self._processes:
            if process.popen is None or process.popen.poll() is None:
                continue
            popen, spec = process.popen, process.spec
            self._close_pipes(process)
            process.popen = None
            process.sigterm_at = process.sigkill_at = None
            if popen.returncode == 0:
                self._message("INFO", spec.label, f"process has finished cleanly [pid {popen.pid}]")
            else:
                self._message("ERROR", spec.label, f"process has died [pid {popen.pid}, exit code "
                              f"{popen.returncode}, cmd '{' '.join(spec.cmd)}'].")
                self._failed = self._failed or not (self._shutting_down or spec.respawn)
            if spec.respawn and not self._shutting_down and (
                    spec.respawn_max_retries < 0 or process.respawns < spec.respawn_max_retries):
                process.respawns += 1
                process.respawn_at = time.monotonic() + spec.respawn_delay_s
            elif spec.respawn and not self._shutting_down and popen.returncode != 0:
                # Retries used up: a node that keeps dying is misconfigured; say so once and fail the launch.
                self._message("ERROR", spec.label, f"not respawned again: it died {process.respawns + 1} times "
                              f"(respawn_max_retries {spec.respawn_max_retries}); see its output above")
                self._failed = True

    def _escalate(self) -> None:
        now = time.monotonic()
        for process in self._processes:
            if process.popen is None:
                continue
            if process.sigterm_at is not None and now >= process.sigterm_at:
                self._escalation_message(process, process.spec.sigterm_timeout_s, "SIGINT", "SIGTERM")
                self._signal(process, signal.SIGTERM)
                process.sigterm_at = None
            elif process.sigkill_at is not None and process.sigterm_at is None and now >= process.sigkill_at:
                self._escalation_message(process, process.spec.sigkill_timeout_s, "SIGTERM", "SIGKILL")
                self._signal(process, signal.SIGKILL)
                process.sigkill_at = None

    def _escalation_message(self, process: _Process, timeout_s: float, sent: str, escalation: str) -> None:
        self._message("ERROR", process.spec.label, f"process[{process.spec.label}] failed to terminate "
                      f"'{timeout_s}' seconds after receiving '{sent}', escalating to '{escalation}'")

    def _respawn(self) -> None:
        now = time.monotonic()
        for process in self._processes:
            if process.respawn_at is not None and now >= process.respawn_at:
                process.respawn_at = None
                self._start(process)
