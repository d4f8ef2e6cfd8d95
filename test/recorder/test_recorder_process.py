"""A recorder process (`rlvla run recorder`) stopped by SIGINT or SIGTERM mid-recording leaves a finished bag that
opens and holds every message published before the signal."""

import json
import os
import shutil
import signal
import subprocess
from pathlib import Path

import pytest
from rclpy.duration import Duration
from sensor_msgs.msg import JointState
from std_srvs.srv import Trigger

from rlvla_ros.data import open_bag

RLVLA = shutil.which("rlvla") or str(Path(os.__file__).parents[3] / "bin" / "rlvla")


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_signal_mid_recording_leaves_a_bag_with_every_message(ros_graph, wait_for, tmp_path, signum):
    test = ros_graph.node("recorder_process_test")
    joints = test.create_publisher(JointState, "/proc_test/joint_states", 100)  # keeps all 100 until acked
    process = subprocess.Popen(
        [RLVLA, "run", "recorder", "--ros-args", "-p", f"output_dir:={tmp_path}",
         "-p", "topics:=['/proc_test/joint_states']", "-p", "discovery_period_s:=0.1", "-p", "flush_interval_s:=0.2"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    status = test.create_client(Trigger, "/recorder/get_status")

    def received() -> int:
        future = status.call_async(Trigger.Request())
        assert wait_for(future.done, 30.0)
        per_topic = json.loads(future.result().message).get("per_topic", {})
        return per_topic.get("/proc_test/joint_states", {}).get("received", 0)

    try:
        assert wait_for(lambda: joints.get_subscription_count() > 0, 30.0), "the recorder never subscribed"
        assert status.wait_for_service(timeout_sec=30.0)
        for index in range(100):
            joints.publish(JointState(name=["j"], position=[float(index)]))
        assert joints.wait_for_all_acked(Duration(seconds=10.0))  # all in the recorder's reader queue
        # the sentinel: all taken by its executor; the recorder is still running when the signal comes
        assert wait_for(lambda: received() == 100, 30.0)
        assert process.poll() is None
        process.send_signal(signum)
        output, _ = process.communicate(timeout=20)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, output
    bags = [p.parent for p in tmp_path.rglob("metadata.yaml")]
    assert len(bags) == 1, output
    with open_bag(bags[0]) as reader:
        positions = [reader.deserialize(raw, c.msgtype).position[0] for c, _, raw in reader.messages()]
    assert positions == [float(i) for i in range(100)], output
