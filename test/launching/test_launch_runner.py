"""Real runs of `python -m rlvla_ros.launching` with fake node executables that record their argv and pid."""

import json
import os
import pathlib
import signal
import subprocess
import sys
import time

import pytest

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]


class Runner:
    """The launch runner in a child process, with the records its fake nodes leave in `out`."""

    def __init__(self, path: str, arguments: list[str], tmp_path: pathlib.Path) -> None:
        self.out = tmp_path / "records"
        self.out.mkdir()
        env = dict(os.environ, FAKE_NODE_OUT=str(self.out), ROS_LOG_DIR=str(tmp_path / "log"))
        self.popen = subprocess.Popen(
            [sys.executable, "-m", "rlvla_ros.cli", "launch", path, *arguments],
            cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    def records(self) -> list[dict]:
        """Start records of the fake nodes, oldest first."""
        records = [json.loads(path.read_text()) for path in self.out.glob("*.json")]
        return sorted(records, key=lambda record: record["start_s"])

    def wait_for_starts(self, count: int, timeout_s: float = 10.0) -> list[dict]:
        deadline = time.monotonic() + timeout_s
        while len(self.records()) < count:
            assert time.monotonic() < deadline, f"only {len(self.records())} of {count} node starts"
            assert self.popen.poll() is None, self.popen.communicate()[0]
            time.sleep(0.05)
        return self.records()  # each wrote its record once its signal handling was set up

    def finish(self, timeout_s: float = 15.0) -> tuple[int, str]:
        output, _ = self.popen.communicate(timeout=timeout_s)
        return self.popen.returncode, output


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _own_args(record: dict) -> list[str]:
    argv = record["argv"]
    return argv[1:argv.index("--ros-args")]


TWO_NODES = """
    launch:
    - arg: {name: robot, default: ur5}
    - group:
      - push_ros_namespace: {namespace: $(var robot)}
      - node: {pkg: fakepkg, exec: fake_node, name: policy, output: screen, args: --first,
               param: [{name: rate_hz, value: 10}]}
    - node: {pkg: fakepkg, exec: fake_node, exec_name: quiet, args: --second}
    """


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_signal_stops_every_node_and_leaves_no_process(ament_prefix, launch_file, tmp_path, signum):
    runner = Runner(launch_file(TWO_NODES), ["robot:=arm"], tmp_path)
    records = runner.wait_for_starts(2)
    by_flag = {_own_args(record)[0]: record for record in records}
    policy_argv = by_flag["--first"]["argv"]
    assert policy_argv[policy_argv.index("--ros-args"):][:5] == ["--ros-args", "-r", "__node:=policy", "-r",
                                                                 "__ns:=/arm"]
    params_file = policy_argv[policy_argv.index("--params-file") + 1]
    assert pathlib.Path(params_file).read_text() == "/arm/policy:\n  ros__parameters:\n    rate_hz: 10\n"

    runner.popen.send_signal(signum)
    code, output = runner.finish()

    assert code == 0
    assert not any(_alive(record["pid"]) for record in records)
    assert not pathlib.Path(params_file).exists()
    assert "[fake_node-1] started" in output  # output: screen shows stdout
    assert "[fake_node-1] got SIGINT" in output
    assert "[quiet-2] started" not in output and "[quiet-2] to stderr" in output  # output: log shows stderr only
    assert f"{signal.Signals(signum).name} received, shutting down" in output
    launch_log = next((tmp_path / "log").glob("*/launch.log")).read_text()
    assert "[quiet-2] started" in launch_log


def test_respawn_restarts_after_delay_until_interrupted(ament_prefix, launch_file, tmp_path):
    path = launch_file("""
        launch:
        - node: {pkg: fakepkg, exec: fake_node, args: --exit 3, respawn: 'true', respawn_delay: 0.3}
        """)
    runner = Runner(path, [], tmp_path)
    records = runner.wait_for_starts(3)
    gaps = [later["start_s"] - earlier["start_s"] for earlier, later in zip(records, records[1:])]
    assert len({record["pid"] for record in records}) == len(records)
    assert min(gaps) >= 0.3
    runner.popen.send_signal(signal.SIGINT)
    code, output = runner.finish()
    assert code == 0  # a respawning node dying is not a launch failure
    assert "process has died" in output and "exit code 3" in output
    assert not any(_alive(record["pid"]) for record in runner.records())


def test_respawn_max_retries_bounds_restarts_then_runner_exits(ament_prefix, launch_file, tmp_path):
    path = launch_file("""
        launch:
        - node: {pkg: fakepkg, exec: fake_node, args: --exit 0, respawn: 'true', respawn_max_retries: 2}
        """)
    runner = Runner(path, [], tmp_path)
    code, output = runner.finish()
    assert code == 0
    assert len(runner.records()) == 3
    assert output.count("process has finished cleanly") == 3


def test_a_node_that_keeps_dying_is_reported_once_its_retries_are_used_up(ament_prefix, launch_file, tmp_path):
    path = launch_file("""
        launch:
        - node: {pkg: fakepkg, exec: fake_node, args: --exit 3, respawn: 'true', respawn_max_retries: 2}
        """)
    runner = Runner(path, [], tmp_path)
    code, output = runner.finish()
    assert code == 1 and len(runner.records()) == 3
    assert "not respawned again: it died 3 times (respawn_max_retries 2); see its output above" in output


def test_runner_exits_when_nodes_finish_and_reports_failures(ament_prefix, launch_file, tmp_path):
    path = launch_file("""
        launch:
        - node: {pkg: fakepkg, exec: fake_node, args: --exit 0}
        - node: {pkg: fakepkg, exec: fake_node, args: --exit 4}
        """)
    runner = Runner(path, [], tmp_path)
    code, output = runner.finish()
    assert code == 1
    assert "[INFO] [fake_node-1]: process has finished cleanly" in output
    assert "[ERROR] [fake_node-2]: process has died" in output and "exit code 4" in output


def test_shutdown_escalates_to_sigterm_then_sigkill(ament_prefix, launch_file, tmp_path):
    path = launch_file("""
        launch:
        - node: {pkg: fakepkg, exec: fake_node, exec_name: stubborn, args: --ignore-sigint}
        - node: {pkg: fakepkg, exec: fake_node, exec_name: deaf, args: --ignore-sigint --ignore-sigterm}
        """)
    runner = Runner(path, ["sigterm_timeout:=0.5", "sigkill_timeout:=0.5"], tmp_path)
    records = runner.wait_for_starts(2)
    started = time.monotonic()
    runner.popen.send_signal(signal.SIGINT)
    code, output = runner.finish()
    assert time.monotonic() - started < 5.0
    assert code == 0
    assert "[ERROR] [stubborn-1]: process[stubborn-1] failed to terminate '0.5' seconds after receiving " \
           "'SIGINT', escalating to 'SIGTERM'" in output
    assert "escalating to 'SIGKILL'" in output and "[deaf-2]" in output
    assert "stubborn-1]: process[stubborn-1] failed to terminate '0.5' seconds after receiving 'SIGTERM'" \
           not in output
    assert not any(_alive(record["pid"]) for record in records)


def test_nodes_die_with_a_killed_runner(ament_prefix, launch_file, tmp_path):
    runner = Runner(launch_file(TWO_NODES), [], tmp_path)
    records = runner.wait_for_starts(2)
    runner.popen.kill()
    runner.finish()
    deadline = time.monotonic() + 5.0
    while any(_alive(record["pid"]) for record in records) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(_alive(record["pid"]) for record in records)


def test_print_and_show_args_start_nothing(ament_prefix, launch_file, tmp_path):
    path = launch_file(TWO_NODES)
    runner = Runner(path, ["--print"], tmp_path)
    code, output = runner.finish()
    assert code == 0 and runner.records() == []
    assert "[fake_node-1] output=screen" in output and "-r __ns:=/ur5" in output and "|     rate_hz: 10" in output
    shown = subprocess.run([sys.executable, "-m", "rlvla_ros.cli", "launch", path, "--show-args"], cwd=REPO_ROOT,
                           capture_output=True, text=True, check=True).stdout
    assert "'robot':" in shown and "(default: 'ur5')" in shown


def test_bad_launch_file_exits_with_error_naming_line(ament_prefix, launch_file, tmp_path):
    runner = Runner(launch_file("launch:\n- node: {pkg: fakepkg, exec: fake_node}\n- timer: {period: 1}\n"),
                    [], tmp_path)
    code, output = runner.finish()
    assert code == 1 and runner.records() == []
    assert ":3: unsupported tag 'timer'" in output
