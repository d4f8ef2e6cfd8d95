"""episode_manager node: owns the episode life cycle, the same on the simulated and the real arm.

Each episode: once every topic in ``required_publishers`` has a publisher (and, before the first, with
``wait_for_recorder``, once the recorder's ``recorder/get_status`` says ``ready``: a lock-step graph starts at full
speed, and a recorder still matching the reward node would lose the first episode's rewards), call the driver's
``reset_episode``
(task, split and seed from the schedule: every task on every split, tasks fastest, the seed ``base_seed + cycle``),
publish the episode's ``instruction`` (std_msgs/String, transient-local: late joiners get it) and an
``episode_event`` START (carrying the episode_id from the driver), then follow the ``reward`` stream of that
episode_id until the episode ends:

- success: a reward with ``success`` set (length = its step + 1);
- timeout: the reward of step ``max_steps - 1`` of the task arrived;
- intervention: an ``executed_action`` chunk with source "teleop" arrived and ``on_intervention`` is "end" (with
  "continue" its rows are only counted in ``intervention_steps``);
- abort: the ``~/abort`` service (std_srvs/Trigger);
- stalled: no reward of the episode came for ``stall_timeout_s`` (in lock-step one lost message stops the loop for
  good; on a real arm a sensor or the policy died), or a reward skipped steps (the rewards between were lost while
  the graph ran on). The same task, split and seed run again at once (also without
  ``auto_run``: the episode asked for has not run yet), and the stalled episode counts only among the
  ``terminations`` of the statistics.

Then it publishes ``episode_event`` END (success, return, length, reason, intervention steps) and, with
``auto_run``, starts the next episode until ``num_episodes`` are done (0: no limit). Without ``auto_run`` each
``~/start_episode`` call (std_srvs/Trigger) starts the next one. ``~/get_stats`` (std_srvs/Trigger) answers a JSON
object in ``message``: episodes, successes and success_rate overall, ``by_task``, ``by_split`` and ``by_task_split``
(keys "task/split"), ``terminations`` (reason -> count), ``intervention_steps``, the ``current`` episode (or null),
``estop`` (engaged or not) and ``waiting_for``: what the next episode waits for (e.g. "a ~/start_episode call",
"publishers of ['action_chunk']"; empty while its reset is being sent).

E-stop: the node follows the safety filter's latched ``estop`` state (std_msgs/Bool), and sends no reset before it
has received it (a reset moves the arm). While it is engaged no reset
is sent and no episode starts: the running episode ends at once (reason ``estop``; like a stalled one it is left out
of success rates and runs again with the same seed), a reset in flight is abandoned (its result ignored), and
``~/start_episode`` is refused. Releasing the e-stop starts nothing: the next ``~/start_episode`` call resumes (with
``auto_run``, the episodes after it then follow by themselves again).

The perception node learns the episode from ``episode_event``: on START it takes the episode_id and restarts its
step count at 0; ``episode_event`` is reliable and transient-local (depth 10), so a late joiner still gets the START
of the episode in progress.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

from rclpy.node import Node
from rclpy.subscription_content_filter_options import ContentFilterOptions
from std_msgs.msg import Bool, String
from std_srvs.srv import Trigger

from rlvla_ros.msg import ActionChunk, EpisodeEvent, Reward
from rlvla_ros.rewards.episode_book import EpisodeSchedule, ScheduledEpisode, RunningEpisode, SuccessStats
from rlvla_ros.ros.parameters import declare_config
from rlvla_ros.ros.qos import EPISODE_EVENT_QOS, ESTOP_QOS, INSTRUCTION_QOS
from rlvla_ros.ros.spinning import run_node
from rlvla_ros.ros.stats import NodeStats
from rlvla_ros.srv import ResetEpisode

INTERVENTION_POLICIES = ("continue", "end")
SETTLING = "ready_settle_s for discovery to connect the graph"
"""What the first episode waits for once the required publishers are up."""
TICK_PERIOD_S = 0.05
"""Period of the life-cycle timer (stalls, reset timeouts, retries, waiting for the graph); an episode's end and a
reset's answer act at once."""


@dataclass
class EpisodeManagerConfig:
    """Parameters of the episode_manager node."""

    tasks: list[str] = field(default_factory=lambda: ["lift"], metadata={
        "description": "tasks to run, in schedule order (names the driver's reset_episode accepts)"})
    splits: list[str] = field(default_factory=lambda: ["id"], metadata={
        "description": "evaluation splits to run every task on"})
    max_steps: list[int] = field(default_factory=lambda: [50], metadata={
        "description": "time limit in control steps: one value for every task, or one per task"})
    base_seed: int = field(default=0, metadata={"description": "seed of the first cycle over tasks and splits"})
    num_episodes: int = field(default=0, metadata={"description": "episodes to run; 0: no limit"})
    auto_run: bool = field(default=True, metadata={
        "description": "start the first episode at start-up and each next one when one ends; else on ~/start_episode"})
    on_intervention: str = field(default="continue", metadata={
        "description": "what a teleop intervention does: continue (count it) or end the episode"})
    required_publishers: list[str] = field(default_factory=lambda: ["reward"], metadata={
        "description": "topics that must have a publisher before an episode starts (e.g. the policy's action_chunk)"})
    wait_for_recorder: bool = field(default=False, metadata={
        "description": "before the first episode, wait until recorder/get_status says the recorder is ready (every "
                       "recorded topic subscribed and matched), so the bag holds every step of every episode"})
    ready_settle_s: float = field(default=2.0, metadata={
        "description": "after the required publishers appear, wait this long for discovery to connect the rest of "
                       "the graph before the first reset"})
    reset_timeout_s: float = field(default=10.0, metadata={
        "description": "give up on a reset_episode call after this long, and try again"})
    retry_interval_s: float = field(default=1.0, metadata={"description": "wait before retrying a failed reset"})
    stall_timeout_s: float = field(default=30.0, metadata={
        "description": "end an episode that gets no reward for this long (reason stalled) and run it again; 0: never"})

    def __post_init__(self) -> None:
        EpisodeSchedule(self.tasks, self.splits, self.max_steps, self.base_seed)  # raises ValueError if invalid
        if self.num_episodes < 0:
            raise ValueError(f"num_episodes must be >= 0, got {self.num_episodes}")
        if self.on_intervention not in INTERVENTION_POLICIES:
            raise ValueError(f"on_intervention must be one of {INTERVENTION_POLICIES}, got {self.on_intervention!r}")
        if self.ready_settle_s < 0:
            raise ValueError(f"ready_settle_s must be >= 0, got {self.ready_settle_s}")
        if self.reset_timeout_s <= 0 or self.retry_interval_s < 0:
            raise ValueError("reset_timeout_s must be > 0 and retry_interval_s >= 0")
        if self.stall_timeout_s < 0:
            raise ValueError(f"stall_timeout_s must be >= 0 (0: never), got {self.stall_timeout_s}")


class EpisodeManager(Node):
    """Episode life cycle; see the module docstring. Every callback is in the node's default mutually exclusive
    group, so they never run concurrently and the state below needs no lock."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__("episode_manager", **kwargs)
        self.config = declare_config(self, EpisodeManagerConfig)
        c = self.config
        self.schedule = EpisodeSchedule(c.tasks, c.splits, c.max_steps, c.base_seed)
        self.stats = SuccessStats()
        self.episode: RunningEpisode | None = None
        self._next_index = 0
        self._start_wanted = c.auto_run
        self._reset_future = None
        self._reset_spec: ScheduledEpisode | None = None
        self._reset_sent_s = 0.0
        self._retry_at_s = 0.0
        self._ready_since_s: float | None = None
        self._recorder_client = self.create_client(Trigger, "recorder/get_status") if c.wait_for_recorder else None
        self._recorder_query = None
        self._recorder_waiting = "the recorder's status" if c.wait_for_recorder else ""
        """What the recorder lacks before the first episode ('' once it was ready)."""
        self._progress_s = 0.0
        """When the running episode started or last got a reward (monotonic s)."""
        self._estopped: bool | None = None
        """The e-stop state; None until the first ``estop`` message."""
        self._instruction_pub = self.create_publisher(String, "instruction", INSTRUCTION_QOS)
        self._event_pub = self.create_publisher(EpisodeEvent, "episode_event", EPISODE_EVENT_QOS)
        self._reset_client = self.create_client(ResetEpisode, "reset_episode")
        self._stats = NodeStats(self)
        self.create_subscription(Reward, "reward", self._on_reward, 100)
        # Only teleop chunks count (interventions): the middleware filters out the policy's and the expert's, one per
        # control step, before they cost this node a callback (a middleware without content filters delivers them
        # all, and the callback drops them).
        self.create_subscription(ActionChunk, "executed_action", self._on_executed_action, 100,
                                 content_filter_options=ContentFilterOptions(
                                     filter_expression="source = %0",
                                     expression_parameters=[f"'{ActionChunk.SOURCE_TELEOP}'"]))
        self.create_subscription(Bool, "estop", self._on_estop, ESTOP_QOS)
        self.create_service(Trigger, "~/abort", self._on_abort)
        self.create_service(Trigger, "~/start_episode", self._on_start_episode)
        self.create_service(Trigger, "~/get_stats", self._on_get_stats)
        self.create_timer(TICK_PERIOD_S, self._tick)
        self.get_logger().info(
            f"tasks {c.tasks} x splits {c.splits}, base seed {c.base_seed}, "
            f"{c.num_episodes or 'unlimited'} episodes, auto_run {c.auto_run}, on intervention: {c.on_intervention}")

    def _finished_schedule(self) -> bool:
        return bool(self.config.num_episodes) and self._next_index >= self.config.num_episodes

    def _tick(self) -> None:
        """End a stalled episode, give up on a reset that got no answer, and start an episode when one is wanted
        (retries, waiting for the graph to come up); the reset answers and episode ends start the next one at once."""
        now_s = time.monotonic()
        stall_s = self.config.stall_timeout_s
        if self.episode is not None and stall_s and now_s - self._progress_s > stall_s:
            self._run_again(f"no reward for {stall_s} s after step {self.episode.steps}")
        if self._reset_future is not None and now_s - self._reset_sent_s > self.config.reset_timeout_s:
            future, self._reset_future = self._reset_future, None
            future.cancel()
            self._retry_at_s = now_s + self.config.retry_interval_s
            self.get_logger().error(f"reset_episode gave no answer in {self.config.reset_timeout_s} s; retrying")
        self._start_if_wanted()

    def _waiting_for(self, now_s: float) -> tuple[str, bool]:
        """What the next reset waits for ('' when it can be sent now), and whether that is the graph coming up
        (worth a log line) rather than the life cycle."""
        if self._reset_future is not None:
            return "the answer of reset_episode", False
        if self.episode is not None:
            return "the end of the running episode", False
        if self._finished_schedule():
            return f"nothing: all {self.config.num_episodes} scheduled episodes are done", False
        if self._estopped:
            return "the e-stop's release, then a ~/start_episode call", False
        if not self._start_wanted:
            return "a ~/start_episode call", False
        if now_s < self._retry_at_s:
            return "the retry of a failed reset_episode", False
        if self._estopped is None:
            return "the e-stop state on estop (the safety filter latches it)", True
        if not self._reset_client.service_is_ready():
            return "the reset_episode service", True
        # A lock-step simulator moves only when the policy acts: starting before the policy (or the reward node
        # that ends episodes) is up would lose the episode's first observation and stall it.
        missing = [topic for topic in self.config.required_publishers if not self.count_publishers(topic)]
        if missing:
            return f"publishers of {missing}", True
        if self._recorder_waiting:
            return self._recorder_waiting, True
        # A publisher is seen before every subscription it implies is matched (e.g. the policy's observation
        # subscription by perception): give discovery time once, before the first episode.
        if self._ready_since_s is None or now_s - self._ready_since_s < self.config.ready_settle_s:
            return SETTLING, True
        return "", False

    def _ask_recorder(self) -> None:
        """Ask the recorder whether it records every topic (one question at a time); its answer starts the first
        episode at once when it is ready."""
        if self._recorder_query is not None:
            return
        if not self._recorder_client.service_is_ready():
            service = self.resolve_service_name(self._recorder_client.srv_name)
            self._recorder_waiting = f"the recorder's {service} service"
            return
        self._recorder_query = self._recorder_client.call_async(Trigger.Request())
        self._recorder_query.add_done_callback(self._on_recorder_status)

    def _on_recorder_status(self, future) -> None:
        self._recorder_query = None
        try:
            status = json.loads(future.result().message)
            if not isinstance(status, dict):
                raise ValueError(f"a JSON {type(status).__name__}, not an object")
        except Exception as error:  # noqa: BLE001 - a failed call or a malformed answer: keep waiting, say why
            self._recorder_waiting = f"a valid answer from the recorder's status service (the last: {error})"
            return
        if status.get("ready"):
            self._recorder_waiting = ""
            self._start_if_wanted()
        elif not status.get("recording", True):
            self._recorder_waiting = "the recorder to start recording (recorder/start_recording)"
        else:
            self._recorder_waiting = (f"the recorder to record every topic (no publisher yet: "
                                      f"{status.get('pending_topics')}, not matched yet: "
                                      f"{status.get('unmatched_topics')})")

    def _start_if_wanted(self) -> None:
        """Send the next reset if an episode is wanted and the graph is ready for it."""
        now_s = time.monotonic()
        waiting, graph = self._waiting_for(now_s)
        if waiting == SETTLING and self._ready_since_s is None:
            self._ready_since_s = now_s  # the required publishers are up: the settling time starts now
            waiting, graph = self._waiting_for(now_s)
        if waiting:
            if waiting == self._recorder_waiting:
                self._ask_recorder()
            if graph:
                self.get_logger().info(f"waiting for {waiting}", throttle_duration_sec=5.0)
            return
        spec = self.schedule[self._next_index]
        self._reset_spec, self._reset_sent_s = spec, now_s
        future = self._reset_client.call_async(ResetEpisode.Request(task=spec.task, split=spec.split, seed=spec.seed))
        self._reset_future = future
        # Called in the executor thread as the answer is taken (or when the future is cancelled): the episode
        # starts without waiting for a tick.
        future.add_done_callback(self._on_reset_done)

    def _on_reset_done(self, future) -> None:
        if future is not self._reset_future or future.cancelled():
            return  # cancelled: timed out or abandoned at an e-stop
        spec, self._reset_future = self._reset_spec, None
        assert spec is not None
        response = future.result() if future.exception() is None else None
        if response is None or not response.success:
            reason = response.message if response is not None else str(future.exception())
            self.get_logger().error(f"reset_episode {spec.task}/{spec.split} seed {spec.seed} failed: {reason}; "
                                    f"retrying in {self.config.retry_interval_s} s")
            self._retry_at_s = time.monotonic() + self.config.retry_interval_s
            return
        self._start_wanted = False
        self._next_index += 1
        seeded = ScheduledEpisode(spec.index, spec.task, spec.split, response.seed, spec.max_steps)
        self.episode = RunningEpisode(response.episode_id, seeded, response.instruction,
                                      end_on_intervention=self.config.on_intervention == "end")
        self._progress_s = time.monotonic()
        self._instruction_pub.publish(String(data=response.instruction))
        start = self._event(EpisodeEvent.START)
        start.first_set_stamp = response.first_set_stamp
        self._event_pub.publish(start)
        self.get_logger().info(f"episode {response.episode_id} started: {spec.task}/{spec.split} seed {response.seed}, "
                               f"'{response.instruction}'")

    def _on_reward(self, msg: Reward) -> None:
        if self.episode is None or msg.episode_id != self.episode.episode_id:
            return
        self._progress_s = time.monotonic()
        reason = self.episode.on_reward(msg.step, msg.reward, msg.success)
        if reason == EpisodeEvent.TERMINATION_STALLED:
            self._run_again(f"the reward of step {msg.step} came before that of step {self.episode.steps}: the rewards "
                            "between were lost")
        elif reason:
            self._end_episode()

    def _on_executed_action(self, msg: ActionChunk) -> None:
        if self.episode is None or msg.source != ActionChunk.SOURCE_TELEOP:
            return
        # Teleop chunks may not know the episode; a chunk that names another episode is stale.
        if msg.episode_id and msg.episode_id != self.episode.episode_id:
            return
        if self.episode.on_intervention(msg.horizon):
            self._end_episode()

    def _on_estop(self, msg: Bool) -> None:
        if msg.data == self._estopped:
            return
        known, self._estopped = self._estopped is not None, msg.data
        if not msg.data:
            if known:
                self.get_logger().info("e-stop released: the next ~/start_episode resumes the episodes")
            return
        self._start_wanted = False
        if self._reset_future is not None:
            future, self._reset_future = self._reset_future, None
            future.cancel()
            self.get_logger().warning("e-stop engaged during a reset_episode call: its result is ignored")
        if self.episode is not None:
            self._next_index = self.episode.spec.index
            self.episode.estop()
            self._end_episode()
            self._start_wanted = False
        self.get_logger().warning("e-stop engaged: no reset or episode until it is released and ~/start_episode is "
                                  "called")

    def _run_again(self, why: str) -> None:
        """End the episode as stalled (if its rewards have not already) and run its task, split and seed again."""
        assert self.episode is not None
        self.episode.stall()
        spec = self.episode.spec
        self.get_logger().warning(
            f"episode {self.episode.episode_id} stalled: {why} (a message lost in lock-step, or a node stopped); "
            f"running {spec.task}/{spec.split} seed {spec.seed} again")
        self._next_index = spec.index
        self._start_wanted = True  # also without auto_run: the episode asked for has not run yet
        self._end_episode()

    def _end_episode(self) -> None:
        assert self.episode is not None
        episode = self.episode
        self._event_pub.publish(self._event(EpisodeEvent.END))
        self.stats.add(episode)
        self.episode = None
        if self.config.auto_run:
            self._start_wanted = True
        self.get_logger().info(
            f"episode {episode.episode_id} ended: {episode.termination_reason} after {episode.steps} steps, "
            f"return {episode.episode_return:.3f}, {episode.intervention_steps} intervention steps; "
            f"success rate {self.stats.as_dict()['success_rate']:.3f} over {self.stats.as_dict()['episodes']}")
        if self._finished_schedule():
            self.get_logger().info(f"all {self.config.num_episodes} episodes done: {self.stats.to_json()}")
        self._start_if_wanted()

    def _event(self, kind: int) -> EpisodeEvent:
        episode = self.episode
        assert episode is not None
        event = EpisodeEvent(event=kind, episode_id=episode.episode_id, task=episode.spec.task,
                             split=episode.spec.split, seed=episode.spec.seed, instruction=episode.instruction)
        event.header.stamp = self.get_clock().now().to_msg()
        if kind == EpisodeEvent.END:
            event.success = episode.success
            event.episode_return = episode.episode_return
            event.length = episode.steps
            event.termination_reason = episode.termination_reason
            event.intervention_steps = episode.intervention_steps
        return event

    def _on_abort(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        if self.episode is None:
            response.success, response.message = False, "no episode is running"
            return response
        episode_id = self.episode.episode_id
        self.episode.abort()
        self._end_episode()
        response.success, response.message = True, f"episode {episode_id} aborted"
        return response

    def _on_start_episode(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        if self._finished_schedule():
            response.success = False
            response.message = f"all {self.config.num_episodes} scheduled episodes are done"
        elif self._estopped:
            response.success = False
            response.message = "e-stop engaged: release it (safety_filter/estop) before starting an episode"
        elif self.episode is not None or self._reset_future is not None or self._start_wanted:
            response.success, response.message = False, "an episode is already running or starting"
        else:
            self._start_wanted = True
            spec = self.schedule[self._next_index]
            response.success = True
            response.message = f"starting episode {spec.index}: {spec.task}/{spec.split} seed {spec.seed}"
            self._start_if_wanted()
        return response

    def _on_get_stats(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        current = None
        if self.episode is not None:
            e = self.episode
            current = {"episode_id": e.episode_id, "task": e.spec.task, "split": e.spec.split, "seed": e.spec.seed,
                       "steps": e.steps, "intervention_steps": e.intervention_steps}
        response.success = True
        response.message = json.dumps({**self.stats.as_dict(), "current": current, "estop": self._estopped,
                                       "waiting_for": self._waiting_for(time.monotonic())[0]}, sort_keys=True)
        return response


def main(args: list[str] | None = None) -> int:
    return run_node(EpisodeManager, args)
