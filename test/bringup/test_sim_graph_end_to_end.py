"""End to end: `rlvla launch launch/sim.launch.yaml` brings up the graph; episodes run; a fine-tune triggered through
the learner's service reaches the policy node (its version changes) while episodes keep running."""

import pathlib

import pytest
from rclpy.qos import DurabilityPolicy, QoSProfile

from rlvla_ros.launching.background import BackgroundLaunch
from rlvla_ros.msg import ActionChunk, EpisodeEvent, FineTuneStatus
from rlvla_ros.ros.commander import FineTuneCommander
from rlvla_ros.ros.param_files import write_config_overlay
from rlvla_ros.ros.stats import watch_node_stats
from rlvla_ros.training.experiments import record_expert_bag

LAUNCH_FILE = pathlib.Path(__file__).resolve().parents[2] / "launch" / "sim.launch.yaml"
NAMESPACE = "e2e"


@pytest.fixture
def sim_graph(tmp_path):
    config_dir = write_config_overlay(tmp_path / "config", {
        "episode_manager": {"tasks": ["lift"], "splits": ["id"], "max_steps": [12]},
        "learner": {"eval_episodes": 2},
    })
    launch = BackgroundLaunch(LAUNCH_FILE, {
        "namespace": NAMESPACE, "config_dir": str(config_dir), "clock_mode": "lockstep",
        "watchdog_timeout_s": "30.0", "learner_output_dir": str(tmp_path / "learner"),
        "data_root": str(tmp_path)}, tmp_path / "launch.log")
    with launch:
        yield launch
    assert launch.process.returncode == 0, launch.log_tail()


def test_episodes_run_and_a_fine_tune_reaches_the_running_policy(sim_graph, ros_graph, wait_for, tmp_path):
    probe = ros_graph.node("probe")
    ends, executed = [], []
    probe.create_subscription(
        EpisodeEvent, f"/{NAMESPACE}/episode_event",
        lambda event: ends.append(event) if event.event == EpisodeEvent.END else None,
        QoSProfile(depth=10, durability=DurabilityPolicy.TRANSIENT_LOCAL))
    probe.create_subscription(ActionChunk, f"/{NAMESPACE}/executed_action", executed.append, 10)
    # A lost message stalls lock-step; the episode manager then runs the episode again (at most once here).
    finished = lambda: [event for event in ends if event.termination_reason != EpisodeEvent.TERMINATION_STALLED]
    assert wait_for(lambda: len(finished()) >= 2, timeout_s=120.0), sim_graph.log_tail()
    assert all(event.termination_reason in ("success", "timeout") for event in finished())
    assert len(ends) - len(finished()) <= 1, sim_graph.log_tail()
    assert {chunk.policy_version for chunk in executed} == {0}
    # Every node reports on ~/stats; those on the control path time their callbacks.
    control_path = {"sim_bridge", "perception", "policy", "safety_filter", "reward", "episode_manager"}
    # By name: a snapshot of the graph's topics missed the learner's in a loaded run (not discovered yet)
    stats = watch_node_stats(probe, f"/{NAMESPACE}", control_path | {"learner"})
    assert wait_for(lambda: set(stats) >= control_path | {"learner"}), sorted(stats)
    assert wait_for(lambda: all("callback_latency_ms" in stats[name] for name in control_path)), stats

    bag, _ = record_expert_bag(tmp_path / "demos", ["lift"], num_demos=2, image_size=64)
    commander = FineTuneCommander(f"/{NAMESPACE}/learner", context=ros_graph.context)
    try:
        job = commander.start_finetune("bc", datasets=[str(bag)], steps=20,
                                       overrides={"tasks": ["lift"], "image_size": 64, "chunk_size": 4})
        assert job.accepted, job.message
        final = commander.wait_for_job(job.job_id, timeout_s=180.0)
    finally:
        commander.destroy_node()
    assert final.state == FineTuneStatus.STATE_SUCCEEDED, final.message
    assert pathlib.Path(final.best_checkpoint).is_dir()

    assert wait_for(lambda: any(chunk.policy_version >= 1 for chunk in executed), timeout_s=60.0), \
        sim_graph.log_tail()
    ends_at_swap = len(finished())
    assert wait_for(lambda: len(finished()) >= ends_at_swap + 2, timeout_s=120.0), sim_graph.log_tail()
    assert executed[-1].policy_version >= 1
