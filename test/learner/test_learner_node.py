"""The learner node over real rclpy: jobs through services and the action, status, refusals, failures, stop."""

import re
from pathlib import Path

import pytest
from rclpy.action import ActionClient
from rclpy.parameter import Parameter

from rlvla_ros.action import FineTune
from rlvla_ros.msg import FineTuneStatus
from rlvla_ros.nodes.learner import Learner
from rlvla_ros.policies import load_policy
from rlvla_ros.srv import GetFineTuneStatus, LoadCheckpoint, StartFineTune, StopFineTune
from rlvla_ros.training.experiments import record_expert_bag

SUCCEEDED, FAILED, CANCELLED, RUNNING = (FineTuneStatus.STATE_SUCCEEDED, FineTuneStatus.STATE_FAILED,
                                         FineTuneStatus.STATE_CANCELLED, FineTuneStatus.STATE_RUNNING)
BC_OVERRIDES = "{image_size: 32, log_interval: 5, checkpoint_interval: 10}"


@pytest.fixture(scope="module")
def bag(tmp_path_factory) -> Path:
    return record_expert_bag(tmp_path_factory.mktemp("demos"), ["lift"], 2, 32)[0]


@pytest.fixture
def learner(ros_graph, tmp_path):
    node = Learner(context=ros_graph.context, parameter_overrides=[
        Parameter("output_dir", value=str(tmp_path / "runs")),
        Parameter("status_rate_hz", value=5.0),
    ])
    ros_graph.add(node)
    yield node
    if node.runner.is_running():
        node.runner.stop()
        node.runner.wait(30.0)


class Client:
    """Test-side view of the learner: service calls, the status topic and a fake policy load service."""

    def __init__(self, ros_graph, wait_for) -> None:
        self.node = ros_graph.node("learner_test")
        self.wait_for = wait_for
        self.statuses: list[FineTuneStatus] = []
        self.loaded: list[str] = []
        self.node.create_subscription(FineTuneStatus, "learner/status", self.statuses.append, 50)
        self.node.create_service(LoadCheckpoint, "policy/load_checkpoint", self._load)
        self.start_client = self.node.create_client(StartFineTune, "learner/start_finetune")
        self.stop_client = self.node.create_client(StopFineTune, "learner/stop_finetune")
        self.status_client = self.node.create_client(GetFineTuneStatus, "learner/get_status")

    def _load(self, request, response):
        self.loaded.append(request.path)
        response.success, response.policy_version = True, len(self.loaded)
        return response

    def call(self, client, request, timeout_s: float = 30.0):
        assert client.wait_for_service(timeout_sec=10.0)
        future = client.call_async(request)
        assert self.wait_for(future.done, timeout_s)
        return future.result()

    def start(self, algorithm: str, datasets=(), steps: int = 0, overrides: str = BC_OVERRIDES):
        return self.call(self.start_client, StartFineTune.Request(
            algorithm=algorithm, datasets=[str(d) for d in datasets], steps=steps, overrides_yaml=overrides))

    def status(self, job_id: str = "") -> GetFineTuneStatus.Response:
        return self.call(self.status_client, GetFineTuneStatus.Request(job_id=job_id))

    def wait_state(self, states, timeout_s: float = 60.0) -> FineTuneStatus:
        assert self.wait_for(lambda: self.status().status.state in states, timeout_s)
        return self.status().status


@pytest.fixture
def client(ros_graph, wait_for, learner) -> Client:
    return Client(ros_graph, wait_for)


def test_bc_job_runs_to_success_publishes_status_and_hands_the_best_to_the_policy(client, bag, wait_for):
    response = client.start("bc", [bag], steps=20)
    assert response.accepted, response.message
    status = client.wait_state({SUCCEEDED})
    assert status.job_id == response.job_id and status.step == 20 and status.total_steps == 20
    assert (status.progress, status.time_budget_s) == (1.0, 0.0) and status.elapsed_s > 0
    assert {m.name for m in status.metrics} >= {"loss", "val_loss"}
    assert load_policy(status.best_checkpoint).config.image_size == 32
    assert load_policy(status.latest_checkpoint).config.chunk_size == 4
    assert (Path(status.latest_checkpoint).parent.parent / "learning_curve.png").is_file()
    assert wait_for(lambda: status.best_checkpoint in client.loaded, 10.0)
    assert wait_for(lambda: any(s.state == RUNNING for s in client.statuses), 5.0)
    assert wait_for(lambda: client.statuses and client.statuses[-1].state == SUCCEEDED, 5.0)


@pytest.mark.parametrize(("algorithm", "datasets", "overrides", "reason"), [
    ("dqn", [], "", "unknown algorithm 'dqn'; valid: .*bc.*grpo.*ppo"),
    ("bc", [], "", "give at least one dataset"),
    ("bc", ["/nonexistent/bag"], "", "/nonexistent/bag does not exist"),
    ("grpo", [], "{group_size: [", "not valid YAML"),
    ("grpo", [], "{learning_rat: 0.1}", "unknown GrpoConfig overrides \\['learning_rat'\\]"),
    ("ppo", [], "{rollout_workers: -1}", "rollout_workers must be >= 0, got -1"),
])
def test_invalid_requests_are_refused_with_the_reason(client, algorithm, datasets, overrides, reason):
    response = client.start(algorithm, datasets, overrides=overrides)
    assert not response.accepted and response.job_id == ""
    assert re.search(reason, response.message), response.message
    assert client.status().status.state == FineTuneStatus.STATE_IDLE


def test_one_job_at_a_time_and_stop_keeps_a_loadable_checkpoint(client, bag):
    first = client.start("bc", [bag], steps=100000)
    assert first.accepted
    second = client.start("bc", [bag], steps=10)
    assert not second.accepted and first.job_id in second.message and "one job at a time" in second.message
    assert client.wait_for(lambda: client.status().status.latest_checkpoint != "", 60.0)
    wrong = client.call(client.stop_client, StopFineTune.Request(job_id="other"))
    assert not wrong.success and "not the running job" in wrong.message
    running = client.status().status
    assert running.state == RUNNING and 0 < running.progress < 0.01 and running.elapsed_s > 0
    stop = client.call(client.stop_client, StopFineTune.Request())
    assert stop.success, stop.message
    status = client.wait_state({CANCELLED})
    assert status.progress < 0.01 and status.elapsed_s >= running.elapsed_s
    assert load_policy(status.latest_checkpoint).config.image_size == 32
    again = client.call(client.stop_client, StopFineTune.Request())
    assert not again.success and "no job is running" in again.message


def test_a_time_budgeted_online_job_reports_its_progress_by_the_budget(client, wait_for):
    response = client.start("ppo", steps=10**6, overrides=(
        "{image_size: 32, num_envs: 2, episodes_per_iteration: 2, minibatch_size: 16, update_epochs: 1, "
        "eval_interval: 1000, eval_episodes: 2, time_budget_s: 6}"))
    assert response.accepted and "for 1000000 steps or 6 s, whichever comes first," in response.message
    assert wait_for(lambda: client.status().status.step >= 1, 60.0)
    running = client.status().status
    assert running.time_budget_s == 6.0
    # Far from its million steps, the job is as far along as its clock: elapsed / budget.
    assert running.progress == pytest.approx(min(running.elapsed_s / 6.0, 1.0), abs=0.05) and running.progress > 0
    status = client.wait_state({SUCCEEDED})
    assert status.step < 10**6 and status.progress == 1.0 and status.elapsed_s >= 6.0


def test_a_failing_trainer_ends_failed_and_the_node_keeps_serving(client, bag):
    response = client.start("bc", [bag], steps=5, overrides="{tasks: [push]}")
    assert response.accepted
    status = client.wait_state({FAILED})
    assert "no complete episodes of tasks ['push']" in status.message
    unknown = client.status("nope")
    assert not unknown.success and status.job_id in unknown.message
    assert client.start("bc", [bag], steps=5).accepted
    assert client.wait_state({SUCCEEDED}).step == 5


def test_fine_tune_action_streams_feedback_and_returns_the_best_checkpoint(ros_graph, client, bag, wait_for):
    action = ActionClient(client.node, FineTune, "learner/fine_tune")
    assert action.wait_for_server(timeout_sec=10.0)
    feedback: list = []
    goal = FineTune.Goal(algorithm="bc", datasets=[str(bag)], steps=40, overrides_yaml=BC_OVERRIDES)
    send = action.send_goal_async(goal, feedback_callback=lambda f: feedback.append(f.feedback.status))
    assert wait_for(send.done, 10.0) and send.result().accepted
    result_future = send.result().get_result_async()
    assert wait_for(result_future.done, 90.0)
    result = result_future.result().result
    assert result.success, result.message
    assert load_policy(result.best_checkpoint).config.image_size == 32
    assert {m.name for m in result.metrics} >= {"loss"}
    assert feedback and feedback[0].job_id == result.job_id


def test_fine_tune_action_with_a_bad_goal_aborts_with_the_reason(client, wait_for):
    action = ActionClient(client.node, FineTune, "learner/fine_tune")
    assert action.wait_for_server(timeout_sec=10.0)
    send = action.send_goal_async(FineTune.Goal(algorithm="nope"))
    assert wait_for(send.done, 10.0)
    result_future = send.result().get_result_async()
    assert wait_for(result_future.done, 10.0)
    result = result_future.result().result
    assert not result.success and "unknown algorithm 'nope'" in result.message


@pytest.mark.parametrize("bad", [{"rollout_workers": -1}, {"num_threads": 0}])
def test_learner_parameters_refuse_negative_workers_and_zero_threads(bad):
    from rlvla_ros.nodes.learner import LearnerConfig

    with pytest.raises(ValueError, match="rollout_workers must be >= 0 and num_threads >= 1"):
        LearnerConfig(**bad)
