"""The episode_manager node against a fake driver: life cycle, termination reasons, interventions, statistics."""

import json

import pytest
from rclpy.parameter import Parameter
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from std_msgs.msg import Bool, String
from std_srvs.srv import Trigger

from rlvla_ros.msg import ActionChunk, EpisodeEvent, Reward
from rlvla_ros.nodes import episode_manager
from rlvla_ros.nodes.episode_manager import EpisodeManager
from rlvla_ros.ros.qos import ESTOP_QOS
from rlvla_ros.srv import ResetEpisode

LATCHED = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)


class FakeDriver:
    """Serves reset_episode like sim_bridge: answers episode ids ep1, ep2, ...; can fail the first calls."""

    def __init__(self, node, failures: int = 0):
        self.requests: list[tuple[str, str, int]] = []
        self.failures = failures
        node.create_service(ResetEpisode, "reset_episode", self._reset)

    def _reset(self, request, response):
        self.requests.append((request.task, request.split, request.seed))
        if self.failures:
            self.failures -= 1
            response.success, response.message = False, "scene did not settle"
            return response
        response.success = True
        response.episode_id = f"ep{len(self.requests)}"
        response.instruction = f"{request.task} the red block"
        response.seed = request.seed
        response.first_set_stamp.sec = 100 + len(self.requests)  # the stamp of the reset's sensor set
        return response


class Rig:
    def __init__(self, ros_graph, wait_for, failures=0, estop_released=True, **parameters):
        self.wait_for = wait_for
        self.test = ros_graph.node("episode_manager_test")
        self.driver = FakeDriver(self.test, failures)
        self.events: list[EpisodeEvent] = []
        self.instructions: list[str] = []
        self.test.create_subscription(EpisodeEvent, "episode_event", self.events.append, LATCHED)
        self.rewards = self.test.create_publisher(Reward, "reward", 10)
        self.executed = self.test.create_publisher(ActionChunk, "executed_action", 10)
        self.estop = self.test.create_publisher(Bool, "estop", ESTOP_QOS)  # the safety filter's latched state
        if estop_released:
            self.estop.publish(Bool(data=False))
        parameters = {"retry_interval_s": 0.2, **parameters}
        overrides = [Parameter(name, value=value) for name, value in parameters.items()]
        self.node = ros_graph.add(EpisodeManager(context=ros_graph.context, parameter_overrides=overrides))
        # Counts the life-cycle timer's ticks: after a clock skip, "it ticked twice" is proof that it looked.
        self.ticks = 0
        (timer,) = [timer for timer in self.node.timers if timer.callback == self.node._tick]  # not ~/stats'
        tick = timer.callback

        def counted_tick():
            tick()
            self.ticks += 1

        timer.callback = counted_tick
        assert wait_for(lambda: all(s.get_publisher_count() > 0 for s in self.node.subscriptions), 10.0)

    def wait_events(self, count: int, timeout_s: float = 10.0) -> list[EpisodeEvent]:
        assert self.wait_for(lambda: len(self.events) >= count, timeout_s), [e.event for e in self.events]
        return self.events

    def reward(self, episode_id: str, step: int, success: bool = False, value: float = 0.0) -> None:
        self.rewards.publish(Reward(episode_id=episode_id, step=step, reward=value, sparse_reward=value,
                                    success=success, source="sim_privileged"))

    def wait_for_ticks(self, count: int = 2) -> None:
        """Wait until the node's timer has run ``count`` more times (the first may have begun before the call)."""
        ticks = self.ticks
        assert self.wait_for(lambda: self.ticks >= ticks + count, 10.0)

    def stats(self) -> dict:
        return json.loads(self.call("get_stats").message)

    def wait_until_waiting_for(self, what: str) -> dict:
        """The statistics once the node says its next episode waits for ``what``: it has looked at everything that
        could start one and started none."""
        assert self.wait_for(lambda: self.stats()["waiting_for"] == what, 10.0), self.stats()
        return self.stats()

    def call(self, service: str) -> Trigger.Response:
        client = self.test.create_client(Trigger, f"episode_manager/{service}")
        assert client.wait_for_service(timeout_sec=10.0)
        future = client.call_async(Trigger.Request())
        assert self.wait_for(future.done, 10.0)
        return future.result()


def test_episodes_end_on_success_timeout_and_abort_and_follow_the_schedule(ros_graph, wait_for):
    rig = Rig(ros_graph, wait_for, tasks=["lift", "push"], max_steps=[3, 5], base_seed=10, num_episodes=3)
    start = rig.wait_events(1)[0]
    assert (start.event, start.episode_id, start.task, start.split, start.seed) == (EpisodeEvent.START, "ep1",
                                                                                    "lift", "id", 10)
    rig.reward("ep1", 0, value=0.25)
    rig.reward("stale", 0, success=True)  # another episode's reward is ignored
    rig.reward("ep1", 1, success=True, value=1.0)
    end = rig.wait_events(2)[1]
    assert (end.event, end.episode_id, end.termination_reason, end.success, end.length) == (
        EpisodeEvent.END, "ep1", "success", True, 2)
    assert end.episode_return == pytest.approx(1.25)

    start = rig.wait_events(3)[2]
    assert (start.episode_id, start.task, start.seed) == ("ep2", "push", 10)
    assert start.first_set_stamp.sec == 102  # the reset reply's: perception starts the episode there
    for step in range(5):
        rig.reward("ep2", step)
    end = rig.wait_events(4)[3]
    assert (end.termination_reason, end.success, end.length) == ("timeout", False, 5)

    start = rig.wait_events(5)[4]
    assert (start.episode_id, start.task, start.seed) == ("ep3", "lift", 11)  # next cycle, next seed
    rig.reward("ep3", 0)
    assert wait_for(lambda: rig.node.episode is not None and rig.node.episode.steps == 1, 5.0)
    response = rig.call("abort")
    assert response.success and "ep3" in response.message
    end = rig.wait_events(6)[5]
    assert (end.termination_reason, end.length) == ("abort", 1)

    stats = rig.wait_until_waiting_for("nothing: all 3 scheduled episodes are done")  # no fourth episode
    assert rig.driver.requests == [("lift", "id", 10), ("push", "id", 10), ("lift", "id", 11)]
    assert len(rig.events) == 6
    assert (stats["episodes"], stats["successes"], stats["current"]) == (3, 1, None)
    assert stats["by_task_split"]["lift/id"] == {"episodes": 2, "successes": 1, "success_rate": 0.5}
    assert stats["terminations"] == {"success": 1, "timeout": 1, "abort": 1}
    assert not rig.call("abort").success  # nothing running
    assert not rig.call("start_episode").success  # schedule done


def test_instruction_is_latched_for_late_subscribers(ros_graph, wait_for):
    rig = Rig(ros_graph, wait_for, tasks=["stack"])
    rig.wait_events(1)
    late = ros_graph.node("late_joiner")
    instructions = []
    late.create_subscription(String, "instruction", lambda m: instructions.append(m.data),
                             QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL))
    assert wait_for(lambda: instructions == ["stack the red block"], 5.0)


@pytest.mark.parametrize("policy", ["end", "continue"])
def test_teleop_interventions_are_counted_and_end_the_episode_if_configured(ros_graph, wait_for, policy):
    rig = Rig(ros_graph, wait_for, on_intervention=policy, max_steps=[4], num_episodes=1)
    rig.wait_events(1)
    teleop = ActionChunk(episode_id="", step=0, horizon=2, action_dim=5, actions=[0.0] * 10, source="teleop")
    rig.executed.publish(ActionChunk(episode_id="ep1", step=0, horizon=1, action_dim=5, actions=[0.0] * 5,
                                     source="policy"))
    rig.executed.publish(teleop)
    if policy == "end":
        end = rig.wait_events(2)[1]
        assert (end.termination_reason, end.intervention_steps) == ("intervention", 2)
        return
    assert wait_for(lambda: rig.node.episode is not None and rig.node.episode.intervention_steps == 2, 5.0)
    for step in range(4):
        rig.reward("ep1", step)
    end = rig.wait_events(2)[1]
    assert (end.termination_reason, end.intervention_steps, end.length) == ("timeout", 2, 4)
    assert json.loads(rig.call("get_stats").message)["intervention_steps"] == 2


def test_without_auto_run_episodes_start_on_request_and_failed_resets_are_retried(ros_graph, wait_for):
    rig = Rig(ros_graph, wait_for, auto_run=False, failures=1, ready_settle_s=0.0)
    rig.wait_until_waiting_for("a ~/start_episode call")
    assert rig.driver.requests == []
    response = rig.call("start_episode")
    assert response.success, response.message
    start = rig.wait_events(1)[0]
    assert start.episode_id == "ep2" and len(rig.driver.requests) == 2  # the first reset failed and was retried
    assert not rig.call("start_episode").success  # one is running
    rig.reward("ep2", 0, success=True)
    rig.wait_events(2)
    rig.wait_until_waiting_for("a ~/start_episode call")  # no auto run
    assert len(rig.driver.requests) == 2


STALL_TIMEOUT_S = 60.0
"""Long enough never to pass by itself in a test: the tests skip the clock past it when they want a stall."""


@pytest.fixture
def clock(skippable_clock):
    return skippable_clock(episode_manager)


def test_a_stalled_episode_ends_and_runs_again_with_its_seed_and_is_not_counted(ros_graph, wait_for, clock):
    rig = Rig(ros_graph, wait_for, tasks=["lift", "push"], base_seed=3, stall_timeout_s=STALL_TIMEOUT_S)
    rig.wait_events(1)
    rig.reward("ep1", 0)
    rig.reward("ep1", 1, success=True)
    assert rig.wait_events(3)[2].episode_id == "ep2"
    rig.reward("ep2", 0)  # then nothing: the graph stopped
    assert wait_for(lambda: rig.node.episode is not None and rig.node.episode.steps == 1, 5.0)
    clock.skip(STALL_TIMEOUT_S / 2)
    rig.wait_for_ticks()
    assert rig.stats()["current"]["episode_id"] == "ep2" and len(rig.driver.requests) == 2  # not stalled yet
    clock.skip(STALL_TIMEOUT_S)
    stalled, again = rig.wait_events(5)[3:5]
    assert (stalled.event, stalled.episode_id, stalled.termination_reason, stalled.length) == (
        EpisodeEvent.END, "ep2", "stalled", 1)
    assert (again.event, again.task, again.seed) == (EpisodeEvent.START, "push", 3)
    assert rig.driver.requests == [("lift", "id", 3), ("push", "id", 3), ("push", "id", 3)]
    rig.reward(again.episode_id, 0, success=True)
    assert rig.wait_events(6)[5].termination_reason == "success"
    stats = json.loads(rig.call("get_stats").message)
    assert (stats["episodes"], stats["successes"]) == (2, 2)  # the stalled episode is not a failure of the policy
    assert stats["terminations"] == {"success": 2, "stalled": 1}


def test_a_reward_past_the_last_step_before_the_last_steps_own_runs_the_episode_again(ros_graph, wait_for):
    # Lock-step runs on until the END: with the last step's reward lost, each later reward was progress (no stall)
    rig = Rig(ros_graph, wait_for, max_steps=[3], base_seed=4)
    rig.wait_events(1)
    for step in (0, 1, 3):  # step 2's reward lost
        rig.reward("ep1", step)
    stalled, again = rig.wait_events(3)[1:3]
    assert (stalled.episode_id, stalled.termination_reason, stalled.length) == ("ep1", "stalled", 2)
    assert (again.event, again.episode_id, again.seed) == (EpisodeEvent.START, "ep2", 4)
    assert rig.driver.requests == [("lift", "id", 4), ("lift", "id", 4)]


def test_rewards_that_skip_a_step_run_the_episode_again(ros_graph, wait_for):
    rig = Rig(ros_graph, wait_for, max_steps=[10], base_seed=5)
    rig.wait_events(1)
    for step in (0, 2):  # step 1's reward lost
        rig.reward("ep1", step)
    stalled, again = rig.wait_events(3)[1:3]
    assert (stalled.episode_id, stalled.termination_reason, stalled.length) == ("ep1", "stalled", 1)
    assert (again.event, again.episode_id, again.seed) == (EpisodeEvent.START, "ep2", 5)
    assert rig.driver.requests == [("lift", "id", 5), ("lift", "id", 5)]


def test_without_auto_run_a_stalled_episode_still_runs_again(ros_graph, wait_for, clock):
    rig = Rig(ros_graph, wait_for, auto_run=False, stall_timeout_s=STALL_TIMEOUT_S)
    assert rig.call("start_episode").success
    rig.wait_events(1)
    clock.skip(STALL_TIMEOUT_S + 1.0)
    stalled, again = rig.wait_events(3)[1:3]
    assert (stalled.termination_reason, again.event, again.seed) == ("stalled", EpisodeEvent.START, 0)
    rig.reward(again.episode_id, 0, success=True)
    assert rig.wait_events(4)[3].termination_reason == "success"
    rig.wait_until_waiting_for("a ~/start_episode call")  # then nothing more without a request
    assert len(rig.driver.requests) == 2


def test_episodes_wait_for_the_required_publishers(ros_graph, wait_for):
    rig = Rig(ros_graph, wait_for, required_publishers=["reward", "action_chunk"])
    rig.wait_until_waiting_for("publishers of ['action_chunk']")  # no policy yet
    assert rig.driver.requests == []
    rig.test.create_publisher(ActionChunk, "action_chunk", 10)
    assert rig.wait_events(1)[0].event == EpisodeEvent.START


def test_with_wait_for_recorder_the_first_episode_waits_until_the_recorder_records_every_topic(ros_graph, wait_for):
    # Issue 20: a lock-step graph ran its first episode while the recorder was still subscribing to reward, and the
    # bag lost that episode's rewards.
    rig = Rig(ros_graph, wait_for, wait_for_recorder=True, ready_settle_s=0.0)
    rig.wait_until_waiting_for("the recorder's /recorder/get_status service")
    status = {"recording": True, "ready": False, "pending_topics": ["/reward"], "unmatched_topics": []}

    def answer(request, response):
        response.success, response.message = True, json.dumps(status)
        return response

    rig.test.create_service(Trigger, "recorder/get_status", answer)
    rig.wait_until_waiting_for("the recorder to record every topic (no publisher yet: ['/reward'], "
                               "not matched yet: [])")
    status.update(pending_topics=[], unmatched_topics=["/reward"])
    rig.wait_until_waiting_for("the recorder to record every topic (no publisher yet: [], not matched yet: "
                               "['/reward'])")
    assert rig.driver.requests == []
    status.update(ready=True, unmatched_topics=[])
    assert rig.wait_events(1)[0].event == EpisodeEvent.START
    status.update(ready=False)  # asked before the first episode only: the next ones do not wait for it
    rig.reward("ep1", 0, success=True)
    assert rig.wait_events(3)[2].episode_id == "ep2"


def test_a_malformed_recorder_status_keeps_the_first_episode_waiting_with_the_reason(ros_graph, wait_for):
    rig = Rig(ros_graph, wait_for, wait_for_recorder=True, ready_settle_s=0.0)
    answer = {"message": "not json"}

    def serve(request, response):
        response.success, response.message = True, answer["message"]
        return response

    rig.test.create_service(Trigger, "recorder/get_status", serve)
    rig.wait_until_waiting_for("a valid answer from the recorder's status service (the last: Expecting value: "
                               "line 1 column 1 (char 0))")
    answer["message"] = "[1, 2]"
    rig.wait_until_waiting_for("a valid answer from the recorder's status service (the last: a JSON list, not an "
                               "object)")
    assert rig.driver.requests == []
    answer["message"] = json.dumps({"recording": True, "ready": True})
    assert rig.wait_events(1)[0].event == EpisodeEvent.START  # the node kept asking, and serving


def test_estop_ends_the_episode_and_nothing_resets_or_starts_until_an_explicit_start(ros_graph, wait_for):
    # Issue 17: while e-stopped, episodes timed out and reset_episode (a real arm's homing routine) was called.
    rig = Rig(ros_graph, wait_for, max_steps=[3], base_seed=5)
    assert rig.wait_events(1)[0].episode_id == "ep1"
    rig.reward("ep1", 0)
    rig.estop.publish(Bool(data=True))
    end = rig.wait_events(2)[1]
    assert (end.event, end.episode_id, end.termination_reason, end.length) == (EpisodeEvent.END, "ep1", "estop", 1)
    for step in range(1, 3):  # the graph may go on rewarding the ended episode: no timeout, no reset
        rig.reward("ep1", step)
    refused = rig.call("start_episode")
    assert not refused.success and "e-stop engaged" in refused.message
    rig.estop.publish(Bool(data=False))
    assert wait_for(lambda: not json.loads(rig.call("get_stats").message)["estop"], 5.0)
    stats = json.loads(rig.call("get_stats").message)
    assert (stats["episodes"], stats["terminations"], stats["current"]) == (0, {"estop": 1}, None)
    # The release started nothing: an explicit start runs the interrupted episode again, with its seed.
    response = rig.call("start_episode")
    assert response.success, response.message
    start = rig.wait_events(3)[2]
    assert (start.event, start.episode_id, start.seed) == (EpisodeEvent.START, "ep2", 5)
    assert rig.driver.requests == [("lift", "id", 5), ("lift", "id", 5)]
    assert [e.event for e in rig.events] == [EpisodeEvent.START, EpisodeEvent.END, EpisodeEvent.START]


def test_no_reset_is_sent_before_the_estop_state_is_known_nor_while_it_is_engaged(ros_graph, wait_for):
    rig = Rig(ros_graph, wait_for, estop_released=False, ready_settle_s=0.0)
    publisher = rig.estop
    assert json.loads(rig.call("get_stats").message)["estop"] is None and rig.node._start_wanted
    publisher.publish(Bool(data=True))  # the state arrives: engaged
    assert wait_for(lambda: json.loads(rig.call("get_stats").message)["estop"], 5.0)
    assert rig.driver.requests == []
    refused = rig.call("start_episode")
    assert not refused.success and "e-stop engaged" in refused.message
    publisher.publish(Bool(data=False))
    assert wait_for(lambda: not json.loads(rig.call("get_stats").message)["estop"], 5.0)
    assert rig.call("start_episode").success
    assert rig.wait_events(1)[0].episode_id == "ep1"
    assert rig.driver.requests == [("lift", "id", 0)]
