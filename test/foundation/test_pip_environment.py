"""The pip-only path: `. .venv/bin/activate` alone gives a working ROS 2 shell with `rlvla`."""

import os
import pathlib
import subprocess

import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]
ACTIVATE = REPO / ".venv" / "bin" / "activate"
pytestmark = pytest.mark.skipif(not ACTIVATE.is_file(), reason="pip-only path not set up (run `make setup`)")
# A shell as a user opens it: none of the ROS variables the test session itself runs with.
CLEAN_ENV = {key: value for key, value in os.environ.items()
             if key not in {"AMENT_PREFIX_PATH", "LD_LIBRARY_PATH", "RMW_IMPLEMENTATION", "VIRTUAL_ENV", "ROS_DISTRO",
                            "_ROS_WHEELS_BOOTSTRAP_COMPLETE", "PYTHONPATH"}}
CLEAN_ENV["PATH"] = "/usr/local/bin:/usr/bin:/bin"


def bash(script: str) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", "-c", script], cwd=REPO, env=CLEAN_ENV, capture_output=True, text=True,
                          timeout=300)


def test_doctor_passes_after_activation():
    result = bash(". .venv/bin/activate && rlvla doctor")
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("[  ok]") == 4
    assert "rmw_fastrtps_cpp" in result.stdout
    counts = {kind: len(list((REPO / kind).glob(f"*.{kind}"))) for kind in ("msg", "srv", "action")}
    assert f"{counts['msg']} msg, {counts['srv']} srv, {counts['action']} action" in result.stdout


def test_doctor_names_missing_interfaces_and_exits_nonzero(tmp_path):
    result = bash(f". .venv/bin/activate && AMENT_PREFIX_PATH={tmp_path} rlvla doctor")
    assert result.returncode == 1
    assert "[FAIL] rlvla_ros interfaces" in result.stdout
    assert "Fix: build them" in result.stdout
    assert "1 check(s) failed" in result.stdout


def test_activation_imports_every_interface():
    probe = ("from rlvla_ros.msg import Observation, ActionChunk, Reward, EpisodeEvent, FineTuneStatus; "
             "from rlvla_ros.srv import StartFineTune, StopFineTune, GetFineTuneStatus, LoadCheckpoint, "
             "ResetEpisode, StartRecording, StopRecording; from rlvla_ros.action import FineTune; print('imported')")
    result = bash(f". .venv/bin/activate && python -c \"{probe}\"")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "imported"


def test_deactivate_restores_the_previous_ros_environment():
    result = bash("export AMENT_PREFIX_PATH=/opt/before; . .venv/bin/activate; echo \"$AMENT_PREFIX_PATH\";"
                  "deactivate; echo \"$AMENT_PREFIX_PATH|${RMW_IMPLEMENTATION-unset}|${ROS_DISTRO-unset}\"")
    during, after = result.stdout.strip().splitlines()
    assert during == f"{REPO / '.venv'}:/opt/before"
    assert after == "/opt/before|unset|unset"


def test_rlvla_run_lists_available_executables_for_an_unknown_one():
    result = bash(". .venv/bin/activate && rlvla run no_such_node")
    assert result.returncode == 1
    assert "no executable 'no_such_node'" in result.stdout
