"""Lock-step control loop benchmark: the sim_bridge node and a controller node in one process, over real rclpy.

Each step sends what the safety filter sends (a gripper command, then a one-point joint trajectory) and waits for the
sensor set it triggers (joint state, image, success flag): the round trip that bounds how fast a lock-step graph can
collect episodes. Reported as steps/s over the run and the median and p95 of the per-step round trip.
"""

from __future__ import annotations

import threading
import time

import numpy as np
import rclpy
from rclpy.duration import Duration
from rclpy.parameter import Parameter
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import Float64MultiArray
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

from rlvla_ros.msg import TaskSuccess
from rlvla_ros.nodes.sim_bridge import SimBridge
from rlvla_ros.ros.in_process import in_process_graph, wait_until
from rlvla_ros.sim.tabletop_sim import ARM_JOINT_NAMES, GRIPPER_MAX_OPENING_M, HOME_ARM_Q

NAMESPACE = "/rlvla_bench"
SENSOR_SET = {"joint_states": JointState, "camera/image_raw": Image, "sim/success": TaskSuccess}


def benchmark_lockstep(steps: int = 200, image_size: int = 128, rate_hz: float = 10.0) -> dict:
    """Run `steps` lock-step control steps with a `image_size` px front camera; returns throughput and latencies."""
    if steps < 1 or image_size < 1 or rate_hz <= 0:
        raise ValueError("steps and image_size must be >= 1 and rate_hz > 0")
    with in_process_graph() as (context, executor):
        bridge = SimBridge(context=context, namespace=NAMESPACE, parameter_overrides=[
            Parameter("clock_mode", value="lockstep"), Parameter("image_size", value=image_size),
            Parameter("rate_hz", value=rate_hz), Parameter("lockstep_heartbeat_hz", value=0.0)])
        controller = rclpy.create_node("lockstep_bench_controller", namespace=NAMESPACE, context=context)
        arrived = threading.Condition()
        counts = dict.fromkeys(SENSOR_SET, 0)

        def on_message(topic: str) -> None:
            with arrived:
                counts[topic] += 1
                arrived.notify_all()

        for topic, msg_type in SENSOR_SET.items():
            controller.create_subscription(msg_type, topic, lambda _msg, topic=topic: on_message(topic), 10)
        arm = controller.create_publisher(JointTrajectory, "arm_controller/joint_trajectory", 10)
        gripper = controller.create_publisher(Float64MultiArray, "gripper_controller/commands", 10)
        executor.add_node(bridge)
        executor.add_node(controller)
        matched = [arm.get_subscription_count, gripper.get_subscription_count,
                   *(s.get_publisher_count for s in controller.subscriptions)]
        if not wait_until(lambda: all(count() > 0 for count in matched), 10.0):
            raise RuntimeError("the sim_bridge and the controller did not match within 10 s")
        period = Duration(seconds=1.0 / rate_hz).to_msg()
        round_trips_s = []
        started = time.perf_counter()
        for k in range(steps):
            before = dict(counts)
            sent = time.perf_counter()
            gripper.publish(Float64MultiArray(data=[GRIPPER_MAX_OPENING_M * (k % 2)]))
            q = HOME_ARM_Q + np.array([0.2 * np.sin(k / 10), 0.0, 0.0, 0.0, 0.0])
            arm.publish(JointTrajectory(joint_names=list(ARM_JOINT_NAMES), points=[
                JointTrajectoryPoint(positions=q.tolist(), time_from_start=period)]))
            with arrived:
                if not arrived.wait_for(lambda: all(counts[t] > before[t] for t in counts), 10.0):
                    raise RuntimeError(f"step {k}: no sensor set within 10 s")
            round_trips_s.append(time.perf_counter() - sent)
        elapsed_s = time.perf_counter() - started
        executor.remove_node(bridge)
        bridge.destroy_node()
    return {
        "steps": steps,
        "image_size": image_size,
        "steps_per_s": steps / elapsed_s,
        "round_trip_ms_p50": float(np.percentile(round_trips_s, 50) * 1e3),
        "round_trip_ms_p95": float(np.percentile(round_trips_s, 95) * 1e3),
    }
