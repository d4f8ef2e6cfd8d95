"""panda_sim.launch.yaml: real.launch.yaml's graph, unchanged, on the panda_driver under franka_ros2 topic names."""

from .test_launch_files import GRAPH_NODES, resolved


def test_the_real_bringup_runs_on_the_panda_driver_with_dry_run_on_by_default():
    nodes = resolved("panda_sim.launch.yaml")
    assert set(nodes) == GRAPH_NODES | {"panda_driver"}
    assert {node["ns"] for node in nodes.values()} == {"/rlvla"}
    safety = nodes["safety_filter"]
    assert safety["params"]["dry_run"] is True
    assert safety["params"]["robot_config"].endswith("config/robots/panda.yaml")
    assert safety["remaps"]["arm_controller/joint_trajectory"] == "/panda_arm_controller/joint_trajectory"
    assert nodes["panda_driver"]["remaps"]["arm_controller/joint_trajectory"] == \
        "/panda_arm_controller/joint_trajectory"
    assert nodes["panda_driver"]["remaps"]["camera/image_raw"] == nodes["perception"]["remaps"]["camera/image_raw"]
    assert nodes["reward"]["params"]["source"] == "sim_privileged"
    assert nodes["episode_manager"]["params"]["tasks"] == ["pick_cube"]
    assert nodes["perception"]["params"]["gripper_joint_names"] == ["robotiq_85_left_knuckle_joint"]
    assert resolved("panda_sim.launch.yaml", dry_run="false")["safety_filter"]["params"]["dry_run"] is False
    real = resolved("real.launch.yaml")  # without robot_node_config the nodes keep their own files' values
    assert real["episode_manager"]["params"]["tasks"] == ["lift", "push", "stack", "place_side"]
    assert real["perception"]["params"]["gripper_joint_names"] == ["finger_left", "finger_right"]
