"""The bringup launch files resolve to the intended graph: one graph for sim and real, only the driver differs."""

import pathlib

import pytest
import yaml

from rlvla_ros.launching.plan import parse_launch_file

LAUNCH = pathlib.Path(__file__).resolve().parents[2] / "launch"
GRAPH_NODES = {"perception", "policy", "safety_filter", "reward", "episode_manager", "learner"}


def resolved(file: str, **arguments: str) -> dict[str, dict]:
    """Node name -> {"ns", "remaps", "params"} of the processes `file` starts."""
    plan = parse_launch_file(LAUNCH / file, arguments)
    try:
        nodes = {}
        for spec in plan.processes:
            ros_args = spec.cmd[spec.cmd.index("--ros-args"):]
            pairs = [ros_args[i + 1] for i, arg in enumerate(ros_args) if arg == "-r"]
            remaps = dict(pair.split(":=", 1) for pair in pairs)
            params = {}
            for i, arg in enumerate(ros_args):
                if arg == "--params-file":
                    for section in yaml.safe_load(pathlib.Path(ros_args[i + 1]).read_text()).values():
                        params.update(section["ros__parameters"])
            nodes[remaps.pop("__node")] = {"ns": remaps.pop("__ns"), "remaps": remaps, "params": params}
        return nodes
    finally:
        plan.cleanup()


def test_sim_bringup_is_the_shared_graph_plus_the_sim_bridge_in_one_namespace():
    nodes = resolved("sim.launch.yaml")
    assert set(nodes) == GRAPH_NODES | {"sim_bridge"}
    assert {node["ns"] for node in nodes.values()} == {"/rlvla"}
    assert nodes["safety_filter"]["params"]["dry_run"] is False
    assert nodes["policy"]["params"]["checkpoint"] == ""


def test_real_bringup_has_the_same_graph_no_simulator_and_dry_run_on():
    sim, real = resolved("sim.launch.yaml"), resolved("real.launch.yaml")
    assert set(real) == set(sim) - {"sim_bridge"}
    assert real["safety_filter"]["params"]["dry_run"] is True
    assert real["safety_filter"]["params"]["robot_config"].endswith("config/robots/example_arm.yaml")
    assert real["reward"]["params"]["source"] == "classifier"


def test_real_bringup_remaps_driver_topics_onto_the_graph():
    real = resolved("real.launch.yaml", camera_topic="/cam/color/image_raw", joint_states_topic="/arm/joint_states")
    assert real["perception"]["remaps"]["camera/image_raw"] == "/cam/color/image_raw"
    assert real["perception"]["remaps"]["joint_states"] == "/arm/joint_states"
    assert real["safety_filter"]["remaps"] == {
        "joint_states": "/arm/joint_states",
        "arm_controller/joint_trajectory": "/arm_controller/joint_trajectory",
        "gripper_controller/commands": "/gripper_controller/commands",
        "teleop/action_chunk": "teleop/action_chunk",
    }


def test_namespace_argument_moves_every_node():
    assert {node["ns"] for node in resolved("sim.launch.yaml", namespace="robot2").values()} == {"/robot2"}


def test_recording_is_added_only_when_asked():
    plain = resolved("sim.launch.yaml")
    assert "recorder" not in plain and plain["episode_manager"]["params"]["wait_for_recorder"] is False
    nodes = resolved("sim.launch.yaml", record="true", bag_dir="/tmp/bags")
    assert nodes["recorder"]["params"]["output_dir"] == "/tmp/bags"
    assert nodes["recorder"]["ns"] == "/rlvla"
    assert nodes["episode_manager"]["params"]["wait_for_recorder"] is True  # the bag gets the first episode whole


def test_expert_demonstrations_route_the_bridge_expert_into_the_teleop_input():
    nodes = resolved("sim.launch.yaml", expert="true", teleop_topic="sim/expert_action", clock_mode="lockstep")
    assert nodes["sim_bridge"]["params"]["publish_expert_action"] is True
    assert nodes["sim_bridge"]["params"]["clock_mode"] == "lockstep"
    assert nodes["safety_filter"]["remaps"]["teleop/action_chunk"] == "sim/expert_action"


def test_the_safety_filter_follows_the_drivers_clock_mode_and_stays_realtime_for_real_arms():
    assert resolved("sim.launch.yaml", clock_mode="lockstep")["safety_filter"]["params"]["clock_mode"] == "lockstep"
    assert resolved("panda_sim.launch.yaml", clock_mode="lockstep")["safety_filter"]["params"]["clock_mode"] == \
        "lockstep"
    assert resolved("sim.launch.yaml")["safety_filter"]["params"]["clock_mode"] == "realtime"
    assert resolved("real.launch.yaml")["safety_filter"]["params"]["clock_mode"] == "realtime"


def test_checkpoint_argument_reaches_the_policy_as_a_string():
    assert resolved("sim.launch.yaml", checkpoint="/ckpt/best")["policy"]["params"]["checkpoint"] == "/ckpt/best"


@pytest.mark.parametrize("file", ["sim.launch.yaml", "real.launch.yaml", "graph.launch.yaml", "record.launch.yaml",
                                  "panda_sim.launch.yaml"])
def test_every_node_parameter_file_the_launch_files_name_exists(file):
    plan = parse_launch_file(LAUNCH / file, {})
    try:
        per_node = [[spec.cmd[i + 1] for i, arg in enumerate(spec.cmd)
                     if arg == "--params-file" and not spec.cmd[i + 1].startswith(str(plan.params_dir))]
                    for spec in plan.processes]
        assert all(per_node)
        missing = [path for files in per_node for path in files if not pathlib.Path(path).is_file()]
        assert missing == []
    finally:
        plan.cleanup()


def test_demonstrations_are_recorded_by_the_expert_graph_without_a_policy(tmp_path):
    from rlvla_ros.cli.demo import EXPERT_TOPIC, expert_graph
    from rlvla_ros.contract import DEMO_SEED_START
    from rlvla_ros.training.recipes import load_recipe

    launch = expert_graph(load_recipe("demo"), 7, tmp_path, tmp_path / "config", tmp_path / "bags",
                          tmp_path / "graph.log")
    arguments = dict(arg.split(":=", 1) for arg in launch.command if ":=" in arg)
    assert (arguments["expert"], arguments["policy"], arguments["teleop_topic"]) == ("true", "false", EXPERT_TOPIC)
    nodes = resolved("sim.launch.yaml", **arguments)
    assert set(nodes) == GRAPH_NODES - {"policy"} | {"sim_bridge", "recorder"}
    manager = nodes["episode_manager"]["params"]
    assert (manager["num_episodes"], manager["base_seed"]) == (7, DEMO_SEED_START)
    assert manager["required_publishers"] == ["reward", EXPERT_TOPIC]  # the expert, not a policy, drives
    assert nodes["safety_filter"]["remaps"]["teleop/action_chunk"] == EXPERT_TOPIC
