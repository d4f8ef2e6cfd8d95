"""`rlvla launch rlvla_ros real.launch.yaml` with its defaults (no classifier, no driver) brings every node up and keeps
it up: the reward node waits for a classifier and says how to give it one instead of dying in a respawn loop."""

import pathlib

import pytest
from rcl_interfaces.srv import GetParameters

from rlvla_ros.launching.background import BackgroundLaunch
from rlvla_ros.launching.plan import parse_launch_file

LAUNCH = pathlib.Path(__file__).resolve().parents[2] / "launch"
NODES = ("perception", "policy", "safety_filter", "reward", "episode_manager", "learner")


@pytest.fixture
def real_graph(tmp_path):
    # Only the output folder moves (the default is relative to the working directory); every other value is the
    # file's default.
    launch = BackgroundLaunch(LAUNCH / "real.launch.yaml", {"learner_output_dir": str(tmp_path / "learner")},
                              tmp_path / "launch.log")
    with launch:
        yield launch


def test_every_node_of_the_real_bringup_comes_up_and_stays_up_with_the_defaults(real_graph, ros_graph, wait_for):
    probe = ros_graph.node("real_probe")
    clients = {name: probe.create_client(GetParameters, f"/rlvla/{name}/get_parameters") for name in NODES}
    for name, client in clients.items():
        assert client.wait_for_service(timeout_sec=120.0), f"{name} never came up\n{real_graph.log_tail()}"
    # The reward node is up without a classifier and says what is missing and how to provide it.
    assert wait_for(lambda: "scoring nothing" in real_graph.log_path.read_text(), 60.0), real_graph.log_tail()
    # Every node answers now (the sentinel), and none has exited since the launch started.
    for name, client in clients.items():
        future = client.call_async(GetParameters.Request(names=["use_sim_time"]))
        assert wait_for(future.done, 30.0), f"{name} does not answer\n{real_graph.log_tail()}"
    log = real_graph.log_path.read_text()
    assert "process has died" not in log and "finished cleanly" not in log, real_graph.log_tail()
    assert real_graph.running()


def test_every_respawning_node_has_a_retry_limit():
    for file in ("real.launch.yaml", "sim.launch.yaml"):
        plan = parse_launch_file(LAUNCH / file, {})
        try:
            respawning = [spec for spec in plan.processes if spec.respawn]
            assert respawning and all(spec.respawn_max_retries == 5 for spec in respawning), file
        finally:
            plan.cleanup()
