"""learner node: runs fine-tuning jobs (bc, ppo, grpo, ... from ``rlvla_ros.algorithms.ALGORITHMS``) one at a time.

Services ``~/start_finetune`` (StartFineTune), ``~/stop_finetune`` (StopFineTune), ``~/get_status``
(GetFineTuneStatus); action ``~/fine_tune`` (FineTune: the goal is a StartFineTune request, feedback the job's
status, cancelling stops the job); topic ``~/status`` (FineTuneStatus, every ``1 / status_rate_hz`` s and on every
change). A request that cannot run (unknown algorithm, missing dataset or one outside ``data_root``, bad overrides,
a job already running) is answered ``accepted=false`` with the reason; so is any other failure while handling a
request. The job runs in a worker thread; a trainer exception ends it FAILED with the error as message and the node
keeps serving. Each job writes into ``<output_dir>/<job_id>/``: atomic checkpoints (``latest`` and ``best`` links),
TensorBoard scalars, ``metrics.json`` and a PNG learning curve; ``<output_dir>/jobs.json`` keeps the job history
across restarts. On each new best checkpoint after a successful evaluation the node asks the policy node to load it
(``policy_load_service``); its answer (a refusal's reason included) becomes part of the job's status message.

Online jobs take their episodes from the in-process simulation (``rollout_source: sim``) or from the live graph
(``rollout_source: graph``: ``observation``, ``executed_action``, ``reward`` and ``episode_event`` are joined into
episodes, see :mod:`rlvla_ros.ros.graph_rollouts`).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from traceback import format_exc
from typing import Any

import torch
from rclpy.action import ActionServer, CancelResponse, GoalResponse
from rclpy.callback_groups import ReentrantCallbackGroup
from rclpy.node import Node
from std_msgs.msg import Header

from rlvla_ros.action import FineTune
from rlvla_ros.contract import VALIDATION_SEED_START
from rlvla_ros.envs import ALL_SPLITS
from rlvla_ros.msg import FineTuneStatus, Metric
from rlvla_ros.ros.graph_rollouts import GraphRolloutSource
from rlvla_ros.ros.parameters import declare_config
from rlvla_ros.ros.spinning import run_node
from rlvla_ros.ros.stats import NodeStats
from rlvla_ros.ros.worker import BackgroundCalls
from rlvla_ros.srv import GetFineTuneStatus, LoadCheckpoint, StartFineTune, StopFineTune
from rlvla_ros.training.jobs import JobRequest, JobRunner, JobState, JobStatus

ROLLOUT_SOURCES = ("sim", "graph")


@dataclass
class LearnerConfig:
    """Parameters of the learner node."""

    output_dir: str = field(default="learner_runs", metadata={
        "description": "folder that gets one sub-folder per job (checkpoints, TensorBoard, curves)"})
    data_root: str = field(default=".", metadata={
        "description": "datasets must lie below this folder (relative ones are taken from it); others are refused"})
    default_init_checkpoint: str = field(default="", metadata={
        "description": "policy checkpoint jobs start from unless their overrides set init_checkpoint"})
    rollout_source: str = field(default="sim", metadata={
        "description": "where online jobs get episodes: sim (in-process simulation) or graph (the live ROS graph)"})
    policy_load_service: str = field(default="policy/load_checkpoint", metadata={
        "description": "LoadCheckpoint service told about each new best checkpoint; empty: tell no one"})
    status_rate_hz: float = field(default=1.0, metadata={"description": "rate of ~/status and action feedback"})
    num_envs: int = field(default=8, metadata={"description": "simulated environments of online jobs (sim source)"})
    rollout_workers: int = field(default=0, metadata={
        "description": "extra processes running a share of online jobs' simulated episodes (about one per spare core)"})
    num_threads: int = field(default=1, metadata={"description": "torch intra-op threads of the jobs"})
    eval_splits: list[str] = field(default_factory=lambda: ["id"], metadata={
        "description": "splits online jobs evaluate on; the first scores checkpoints"})
    eval_episodes: int = field(default=16, metadata={
        "description": f"evaluation episodes per task and split of online jobs (validation seeds "
                       f"{VALIDATION_SEED_START}..)"})
    graph_episode_timeout_s: float = field(default=120.0, metadata={
        "description": "graph source: give up waiting for an episode's missing messages after this long"})

    def __post_init__(self) -> None:
        if not self.output_dir or not self.data_root:
            raise ValueError("output_dir and data_root must name folders")
        if self.rollout_source not in ROLLOUT_SOURCES:
            raise ValueError(f"rollout_source must be one of {ROLLOUT_SOURCES}, got {self.rollout_source!r}")
        if not self.status_rate_hz > 0:
            raise ValueError(f"status_rate_hz must be > 0, got {self.status_rate_hz}")
        for split in self.eval_splits:
            if split not in ALL_SPLITS:
                raise ValueError(f"unknown eval split {split!r}; expected some of {ALL_SPLITS}")
        if self.rollout_workers < 0 or self.num_threads < 1:
            raise ValueError("rollout_workers must be >= 0 and num_threads >= 1")
        if self.num_envs < 1 or self.eval_episodes < 1 or not self.graph_episode_timeout_s > 0:
            raise ValueError("num_envs, eval_episodes and graph_episode_timeout_s must be positive")


def status_message(status: JobStatus, stamp: Any) -> FineTuneStatus:
    """FineTuneStatus of a job status snapshot."""
    return FineTuneStatus(
        header=Header(stamp=stamp),
        job_id=status.job_id,
        state=int(status.state),
        algorithm=status.algorithm,
        step=status.step,
        total_steps=status.total_steps,
        time_budget_s=status.time_budget_s,
        elapsed_s=status.elapsed_s,
        progress=status.progress,
        metrics=[Metric(name=name, value=float(value)) for name, value in sorted(status.metrics.items())],
        latest_checkpoint=status.latest_checkpoint,
        best_checkpoint=status.best_checkpoint,
        message=status.summary(),
    )


class Learner(Node):
    """Fine-tuning job server; see the module docstring."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__("learner", **kwargs)
        self.config = declare_config(self, LearnerConfig)
        torch.set_num_threads(self.config.num_threads)
        group = ReentrantCallbackGroup()
        defaults = {
            "init_checkpoint": self.config.default_init_checkpoint,
            "num_envs": self.config.num_envs,
            "rollout_workers": self.config.rollout_workers,
            "eval_splits": self.config.eval_splits,
            "eval_episodes": self.config.eval_episodes,
        }
        self._handles = threading.RLock()
        """Held while a job's thread uses the node's publisher or policy client; destroy_node takes it."""
        self._destroyed = False
        self.runner = JobRunner(
            Path(self.config.output_dir),
            defaults={k: v for k, v in defaults.items() if v != ""},
            on_change=self._publish_status,
            on_new_best=self._announce_best,
            rollout_source_factory=self._graph_source if self.config.rollout_source == "graph" else None,
            data_root=Path(self.config.data_root),
        )
        self._waits = BackgroundCalls(self, "learner_goal_wait", max_workers=4)
        self._status_pub = self.create_publisher(FineTuneStatus, "~/status", 10)
        self._stats = NodeStats(self)
        self.create_service(StartFineTune, "~/start_finetune", self._on_start, callback_group=group)
        self.create_service(StopFineTune, "~/stop_finetune", self._on_stop, callback_group=group)
        self.create_service(GetFineTuneStatus, "~/get_status", self._on_get_status, callback_group=group)
        self._action = ActionServer(
            self, FineTune, "~/fine_tune", execute_callback=self._execute_goal, goal_callback=self._on_goal,
            cancel_callback=lambda _: CancelResponse.ACCEPT, callback_group=group,
        )
        self._load_client = (
            self.create_client(LoadCheckpoint, self.config.policy_load_service, callback_group=group)
            if self.config.policy_load_service else None
        )
        self.create_timer(1.0 / self.config.status_rate_hz, lambda: self._publish_status(self.runner.status()),
                          callback_group=group)
        self.get_logger().info(
            f"learner ready: jobs in {self.config.output_dir} ({len(self.runner.job_ids())} in the history), datasets "
            f"below {Path(self.config.data_root).resolve()}, rollout source {self.config.rollout_source}"
        )

    def destroy_node(self) -> None:
        # A running job's thread outlives the node (in process: a test, a composed graph) and goes on writing its
        # checkpoints and history; it must not touch the destroyed publisher and client (a checkpoint handed over then
        # raised InvalidHandle, and the job failed).
        with self._handles:
            self._destroyed = True
        # rclpy's destroy_node leaves waitables alone: the action server would keep the node, and with it the context's
        # DDS participant, alive until the cycle collector found it (a test session held 9 such participants, and
        # Fast DDS hung creating the next one)
        self._action.destroy()
        super().destroy_node()

    def _graph_source(self) -> GraphRolloutSource:
        return GraphRolloutSource(self, episode_timeout_s=self.config.graph_episode_timeout_s,
                                  load_service=self.config.policy_load_service)

    def _start(self, algorithm: str, datasets: list[str], steps: int, overrides_yaml: str) -> tuple[bool, str, str]:
        """(accepted, job_id, message) of a start request; any failure is a refusal with its reason."""
        request = JobRequest(algorithm=algorithm, datasets=list(datasets), steps=int(steps),
                             overrides_yaml=overrides_yaml)
        try:
            status = self.runner.start(request)
        except ValueError as err:
            self.get_logger().warning(f"refused {algorithm!r} job: {err}")
            return False, "", str(err)
        except Exception as err:  # noqa: BLE001 - a request must never take the node (and its job history) down
            self.get_logger().error(f"refused {algorithm!r} job, it failed while starting: {format_exc()}")
            return False, "", f"could not start the job: {type(err).__name__}: {err}"
        self.get_logger().info(f"job {status.job_id}: {status.message}")
        return True, status.job_id, status.message

    def _on_start(self, request: StartFineTune.Request, response: StartFineTune.Response) -> StartFineTune.Response:
        response.accepted, response.job_id, response.message = self._start(
            request.algorithm, request.datasets, request.steps, request.overrides_yaml
        )
        return response

    def _on_stop(self, request: StopFineTune.Request, response: StopFineTune.Response) -> StopFineTune.Response:
        try:
            job_id = self.runner.stop(request.job_id)
        except Exception as err:  # noqa: BLE001 - ValueError is the expected refusal; anything else is one too
            response.success, response.message = False, str(err) if isinstance(err, ValueError) else repr(err)
            return response
        response.success, response.message = True, f"stopping {job_id}; its last checkpoint stays"
        return response

    def _on_get_status(
        self, request: GetFineTuneStatus.Request, response: GetFineTuneStatus.Response
    ) -> GetFineTuneStatus.Response:
        try:
            status = self.runner.status(request.job_id)
            response.success, response.message = True, ""
        except KeyError:
            status = self.runner.status()
            response.success = False
            response.message = (f"unknown job {request.job_id!r}; the current or last job is "
                                f"{status.job_id or 'none'} ({len(self.runner.job_ids())} in the history)")
        response.status = status_message(status, self.get_clock().now().to_msg())
        return response

    def _on_goal(self, goal: FineTune.Goal) -> GoalResponse:
        # Goals are accepted here and validated by the job runner in execute, so a refusal carries its reason.
        return GoalResponse.ACCEPT

    async def _execute_goal(self, handle) -> FineTune.Result:
        goal = handle.request
        result = FineTune.Result()
        accepted, job_id, message = self._start(goal.algorithm, goal.datasets, goal.steps, goal.overrides_yaml)
        result.job_id, result.message = job_id, message
        if not accepted:
            handle.abort()
            return result
        period_s = 1.0 / self.config.status_rate_hz
        # Waiting in a thread of its own: the single-threaded executor serves the other requests meanwhile.
        while not await self._waits.run(self.runner.wait, period_s):
            if handle.is_cancel_requested:
                try:
                    self.runner.stop(job_id)
                except ValueError:
                    pass  # it ended on its own meanwhile
            handle.publish_feedback(FineTune.Feedback(status=status_message(
                self.runner.status(), self.get_clock().now().to_msg())))
        status = self.runner.status()
        result.success = status.state == JobState.SUCCEEDED
        result.message = status.summary()
        result.best_checkpoint = status.best_checkpoint
        result.metrics = [Metric(name=k, value=float(v)) for k, v in sorted(status.metrics.items())]
        if status.state == JobState.CANCELLED and handle.is_cancel_requested:
            handle.canceled()
        elif result.success:
            handle.succeed()
        else:
            handle.abort()
        return result

    def _publish_status(self, status: JobStatus) -> None:
        with self._handles:
            if not self._destroyed:
                self._status_pub.publish(status_message(status, self.get_clock().now().to_msg()))

    def _announce_best(self, path: Path) -> threading.Event | None:
        """Ask the policy node to load ``path``; the returned event is set once its answer is in the job's status."""
        if self._load_client is None:
            return None
        job_id = self.runner.status().job_id
        with self._handles:
            if self._destroyed:
                return None
            if self._load_client.service_is_ready():
                answered = threading.Event()
                future = self._load_client.call_async(LoadCheckpoint.Request(path=str(path)))
                future.add_done_callback(lambda f: self._loaded(job_id, path, f, answered))
                return answered
        answer = f"best checkpoint {path.name} not loaded: {self.config.policy_load_service} is not available"
        self.get_logger().warning(answer)
        self.runner.record_policy_load(job_id, answer)
        return None

    def _loaded(self, job_id: str, path: Path, future, answered: threading.Event) -> None:
        response = future.result()
        if response is not None and response.success:
            answer = f"the policy loaded {path.name} (version {response.policy_version})"
            self.get_logger().info(f"policy loaded {path} (version {response.policy_version})")
        else:
            reason = response.message if response is not None else "no response"
            answer = f"the policy refused {path.name}: {reason}"
            self.get_logger().warning(f"policy did not load {path}: {reason}")
        self.runner.record_policy_load(job_id, answer)
        answered.set()


def main(args: list[str] | None = None) -> int:
    return run_node(Learner, args)


if __name__ == "__main__":
    raise SystemExit(main())
