"""`rlvla launch rlvla_ros sim.launch.yaml checkpoint:=<checkpoint>` with a checkpoint of the family, image size and
chunk size the demo trains, and no other argument: the shipped defaults take it and episodes run with it in control."""

import json
import pathlib

from rclpy.qos import DurabilityPolicy, QoSProfile
from std_msgs.msg import String

from rlvla_ros.launching.background import BackgroundLaunch
from rlvla_ros.msg import ActionChunk, EpisodeEvent
from rlvla_ros.policies import new_policy, registered_policies
from rlvla_ros.ros.stats import STATS_QOS
from rlvla_ros.training.recipes import load_recipe

LAUNCH_FILE = pathlib.Path(__file__).resolve().parents[2] / "launch" / "sim.launch.yaml"


def test_the_sim_graph_runs_episodes_with_a_demo_checkpoint_and_no_other_argument(
        tmp_path, monkeypatch, ros_graph, wait_for):
    recipe = load_recipe("demo")
    checkpoint = tmp_path / "demo_policy"
    new_policy(recipe.policy_type, chunk_size=recipe.chunk_size, image_size=recipe.image_size).save_pretrained(
        checkpoint)
    monkeypatch.chdir(tmp_path)  # where the learner's default output folder (learner_runs) goes
    probe = ros_graph.node("demo_checkpoint_probe")
    ends, executed, stats = [], [], []
    probe.create_subscription(
        EpisodeEvent, "/rlvla/episode_event", lambda e: ends.append(e) if e.event == EpisodeEvent.END else None,
        QoSProfile(depth=10, durability=DurabilityPolicy.TRANSIENT_LOCAL))
    probe.create_subscription(ActionChunk, "/rlvla/executed_action", executed.append, 100)
    probe.create_subscription(String, "/rlvla/policy/stats", lambda msg: stats.append(json.loads(msg.data)),
                              STATS_QOS)
    launch = BackgroundLaunch(LAUNCH_FILE, {"checkpoint": str(checkpoint)}, tmp_path / "launch.log")
    with launch:
        # A lost message can stall a realtime episode; the episode manager then runs it again.
        finished = lambda: [e for e in ends if e.termination_reason != EpisodeEvent.TERMINATION_STALLED]
        assert wait_for(lambda: len(finished()) >= 2, timeout_s=300.0), launch.log_tail()
        assert wait_for(lambda: stats and stats[-1].get("chunks", 0) > 0, timeout_s=30.0), launch.log_tail()
    assert all(e.termination_reason in ("success", "timeout") for e in finished())
    assert f"{registered_policies()[recipe.policy_type].__name__} from {checkpoint}" in launch.log_path.read_text()
    assert any(chunk.source == ActionChunk.SOURCE_POLICY and chunk.policy_version == 0 for chunk in executed)
    assert "bad_observation" not in stats[-1].get("refused", {}), stats[-1]
