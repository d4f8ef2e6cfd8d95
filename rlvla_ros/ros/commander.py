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
import math
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
RESEND_AFTER_S = 2.0  # a status query unanswered this long is sent again


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
        self._clients_by_name = {}
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
        """Status of a job (empty id: the running or latest one); RuntimeError with the learner's message if none.

        The query is sent again while unanswered: it changes nothing, and a reply can be lost (see `call_service`)."""
        response = self.call_service(self._status, GetFineTuneStatus.Request(job_id=job_id), timeout_s,
                                     resend_after_s=RESEND_AFTER_S)
        if not response.success:
            raise RuntimeError(response.message)
        return response.status

    def wait_for_job(self, job_id: str, on_progress: Callable[[FineTuneStatus], None] | None = None,
                     timeout_s: float | None = None, poll_period_s: float = 1.0,
                     silence_s: float = 30.0) -> FineTuneStatus:
        """Block until the job finishes, calling `on_progress` with each new status; returns the final status.

        Status comes from the learner's status topic and from a `get_status` poll every `poll_period_s`; a poll left
        unanswered is sent again. TimeoutError if the job has not finished after `timeout_s`, or if neither the topic
        nor the service has said anything of the job for `silence_s` (the learner is gone)."""
        started = time.monotonic()
        status: FineTuneStatus | None = None
        reported = None
        heard = started
        poll, polled = None, -math.inf
        while status is None or status.state not in FINISHED_STATES:
            now = time.monotonic()
            if timeout_s is not None and now - started > timeout_s:
                state = "unknown" if status is None else STATE_NAMES[status.state]
                raise TimeoutError(f"job {job_id} still {state} after {timeout_s} s")
            if now - heard > silence_s:
                raise TimeoutError(f"no status of job {job_id} from {self.learner} for {silence_s} s: is the learner "
                                   "still running?")
            if poll is not None and now - polled >= RESEND_AFTER_S:
                self._status.remove_pending_request(poll)  # unanswered: a late reply is dropped, ask again
                poll = None
            if poll is None and now - polled >= poll_period_s:
                poll, polled = self._status.call_async(GetFineTuneStatus.Request(job_id=job_id)), now
            self._executor.spin_once(timeout_sec=0.1)
            heard_of = []
            if poll is not None and poll.done():
                response, poll = poll.result(), None
                if not response.success:
                    raise RuntimeError(response.message)
                heard_of.append(response.status)
            streamed, self._latest_status = self._latest_status, None
            if streamed is not None and streamed.job_id == job_id:
                heard_of.append(streamed)
            for other in heard_of:
                # The topic can miss the final change (e.g. best effort on another host): the polls cover it.
                status, heard = other if status is None else _newer(status, other), time.monotonic()
            if on_progress is not None and status is not None and status != reported:
                on_progress(status)
                reported = status
        if poll is not None:
            self._status.remove_pending_request(poll)
        return status

    def load_checkpoint(self, policy: str, path: str, timeout_s: float = 30.0) -> tuple[bool, str, int]:
        """Ask a policy node (e.g. /rlvla/policy) to load a checkpoint; returns (success, message, version)."""
        response = self.call(LoadCheckpoint, f"{policy.rstrip('/')}/load_checkpoint",
                             LoadCheckpoint.Request(path=path), timeout_s)
        return response.success, response.message, response.policy_version

    def call(self, service_type, name: str, request, timeout_s: float = 30.0, resend_after_s: float | None = None):
        """Call any service, e.g. the episode manager's get_stats; returns the response. One client per service is
        kept for the commander's life, so that each call does not wait for a new client to be discovered; pass
        `resend_after_s` for a request that changes nothing (see `call_service`)."""
        client = self._clients_by_name.get(name)
        if client is None:
            client = self._clients_by_name[name] = self.create_client(service_type, name)
        return self.call_service(client, request, timeout_s, resend_after_s)

    def destroy_node(self) -> None:
        self._executor.remove_node(self)
        self._executor.shutdown()
        super().destroy_node()

    def _on_status(self, status: FineTuneStatus) -> None:
        self._latest_status = status

    def call_service(self, client, request, timeout_s: float, resend_after_s: float | None = None):
        """Call `client` with `request` and spin until the answer; TimeoutError if the service is missing or mute.

        A reply can be lost: the server drops it when it has not yet discovered this client's reply reader (Fast DDS
        waits 100 ms for it), which happens under load with a client made just before the call. For a request that
        changes nothing, `resend_after_s` sends it again while unanswered (a late reply to an earlier copy is
        dropped)."""
        if not client.wait_for_service(timeout_sec=timeout_s):
            raise TimeoutError(f"service {client.srv_name} not available after {timeout_s} s: is the node running "
                               "in this ROS_DOMAIN_ID and namespace?")
        deadline = time.monotonic() + timeout_s
        while True:
            future = client.call_async(request)
            left = deadline - time.monotonic()
            self._executor.spin_until_future_complete(
                future, timeout_sec=max(0.0, left if resend_after_s is None else min(left, resend_after_s)))
            if future.done():
                return future.result()
            client.remove_pending_request(future)
            if time.monotonic() >= deadline:
                raise TimeoutError(f"service {client.srv_name} did not answer within {timeout_s} s")


def _newer(status: FineTuneStatus, other: FineTuneStatus) -> FineTuneStatus:
    """The later of two statuses of one job. The last streamed message stays the latest one received while polls
    answer with the job's state now, so taking whichever came last moved progress back and forth."""
    return max(status, other, key=lambda s: (s.state in FINISHED_STATES, s.elapsed_s))
