"""A Python API over the learner's services, in the style of Nav2's simple commander.

    import rclpy
    from rlvla_ros.ros.commander import FineTuneCommander

    rclpy.init()
    commander = FineTuneCommander("/rlvla/learner")
    job = commander.start_finetune("grpo", overrides={"group_size": 8})
    final = commander.wait_for_job(job.job_id, on_progress=lambda status: print(status.step, status.total_steps))
    print(final.best_checkpoint)
    commander.destroy_node()
    rclpy.shutdown()

Every call spins the commander's own executor until its answer arrives: no other spinning is needed.
"""

import dataclasses
import time
from collections.abc import Callable

import yaml
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node

from rlvla_ros.msg import FineTuneStatus
from rlvla_ros.srv import GetFineTuneStatus, LoadCheckpoint, StartFineTune, StopFineTune

FINISHED_STATES = (FineTuneStatus.STATE_SUCCEEDED, FineTuneStatus.STATE_FAILED, FineTuneStatus.STATE_CANCELLED)
STATE_NAMES = {FineTuneStatus.STATE_IDLE: "idle", FineTuneStatus.STATE_RUNNING: "running",
               FineTuneStatus.STATE_SUCCEEDED: "succeeded", FineTuneStatus.STATE_FAILED: "failed",
               FineTuneStatus.STATE_CANCELLED: "cancelled"}


@dataclasses.dataclass
class StartResult:
    """The learner's answer to a start request."""

    accepted: bool
    job_id: str
    message: str


class FineTuneCommander(Node):
    """Client of one learner node (`learner` is its fully qualified name, e.g. /rlvla/learner)."""

    def __init__(self, learner: str = "/rlvla/learner", node_name: str = "finetune_commander", **node_kwargs):
        super().__init__(node_name, **node_kwargs)
        self._executor = SingleThreadedExecutor(context=self.context)
        self._executor.add_node(self)
        self.learner = learner.rstrip("/")
        self._start = self.create_client(StartFineTune, f"{self.learner}/start_finetune")
        self._stop = self.create_client(StopFineTune, f"{self.learner}/stop_finetune")
        self._status = self.create_client(GetFineTuneStatus, f"{self.learner}/get_status")
        self._latest_status: FineTuneStatus | None = None
        # The learner publishes its status on changes and about once a second; keep the newest.
        self.create_subscription(FineTuneStatus, f"{self.learner}/status", self._on_status, 10)

    def start_finetune(self, algorithm: str, datasets: list[str] | None = None, steps: int = 0,
                       overrides: dict | None = None, timeout_s: float = 10.0) -> StartResult:
        """Ask the learner to start a job; the result says whether it was accepted and why not."""
        request = StartFineTune.Request(algorithm=algorithm, datasets=list(datasets or []), steps=steps,
                                        overrides_yaml=yaml.safe_dump(overrides) if overrides else "")
        response = self.call_service(self._start, request, timeout_s)
        return StartResult(response.accepted, response.job_id, response.message)

    def stop_finetune(self, job_id: str = "", timeout_s: float = 10.0) -> tuple[bool, str]:
        """Stop a job (empty id: the running one); returns (success, message)."""
        response = self.call_service(self._stop, StopFineTune.Request(job_id=job_id), timeout_s)
        return response.success, response.message

    def get_status(self, job_id: str = "", timeout_s: float = 10.0) -> FineTuneStatus:
        """Status of a job (empty id: the running or latest one); RuntimeError with the learner's message if none."""
        response = self.call_service(self._status, GetFineTuneStatus.Request(job_id=job_id), timeout_s)
        if not response.success:
            raise RuntimeError(response.message)
        return response.status

    def wait_for_job(self, job_id: str, on_progress: Callable[[FineTuneStatus], None] | None = None,
                     timeout_s: float | None = None, poll_period_s: float = 1.0) -> FineTuneStatus:
        """Block until the job finishes, calling `on_progress` with each new status; returns the final status."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        status = self.get_status(job_id)
        last_poll = time.monotonic()
        while status.state not in FINISHED_STATES:
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"job {job_id} still {STATE_NAMES[status.state]} after {timeout_s} s")
            if on_progress is not None:
                on_progress(status)
            self._executor.spin_once(timeout_sec=0.1)
            streamed = self._latest_status
            if streamed is not None and streamed.job_id == job_id:
                status = _newer(status, streamed)
            if time.monotonic() - last_poll >= poll_period_s:
                # The topic can miss the final change (e.g. best effort on another host): poll as well.
                status, last_poll = _newer(status, self.get_status(job_id)), time.monotonic()
        if on_progress is not None:
            on_progress(status)
        return status

    def load_checkpoint(self, policy: str, path: str, timeout_s: float = 30.0) -> tuple[bool, str, int]:
        """Ask a policy node (e.g. /rlvla/policy) to load a checkpoint; returns (success, message, version)."""
        response = self.call(LoadCheckpoint, f"{policy.rstrip('/')}/load_checkpoint",
                             LoadCheckpoint.Request(path=path), timeout_s)
        return response.success, response.message, response.policy_version

    def call(self, service_type, name: str, request, timeout_s: float = 30.0):
        """Call any service once, e.g. the episode manager's get_stats; returns the response."""
        client = self.create_client(service_type, name)
        try:
            return self.call_service(client, request, timeout_s)
        finally:
            self.destroy_client(client)

    def destroy_node(self) -> None:
        self._executor.remove_node(self)
        self._executor.shutdown()
        super().destroy_node()

    def _on_status(self, status: FineTuneStatus) -> None:
        self._latest_status = status

    def call_service(self, client, request, timeout_s: float):
        """Call `client` with `request` and spin until the answer; TimeoutError if the service is missing or mute."""
        if not client.wait_for_service(timeout_sec=timeout_s):
            raise TimeoutError(f"service {client.srv_name} not available after {timeout_s} s: is the node running "
                               "in this ROS_DOMAIN_ID and namespace?")
        future = client.call_async(request)
        self._executor.spin_until_future_complete(future, timeout_sec=timeout_s)
        if not future.done():
            raise TimeoutError(f"service {client.srv_name} did not answer within {timeout_s} s")
        return future.result()


def _newer(status: FineTuneStatus, other: FineTuneStatus) -> FineTuneStatus:
    """The later of two statuses of one job. The last streamed message stays the latest one received while polls
    answer with the job's state now, so taking whichever came last moved progress back and forth."""
    return max(status, other, key=lambda s: (s.state in FINISHED_STATES, s.elapsed_s))
