"""The learner node over real rclpy: jobs through services and the action, status, refusals, failures, stop."""

import re
from pathlib import Path

import pytest
from rclpy.parameter import Parameter

from rlvla_ros.action import FineTune
from rlvla_ros.msg import FineTuneStatus
from rlvla_ros.nodes.learner import Learner
from rlvla_ros.nodes.policy import PolicyNode
from rlvla_ros.policies import load_policy
from rlvla_ros.srv import GetFineTuneStatus, LoadCheckpoint, StartFineTune, StopFineTune
from rlvla_ros.training.experiments import record_expert_bag

SUCCEEDED, FAILED, CANCELLED, RUNNING = (FineTuneStatus.STATE_SUCCEEDED, FineTuneStatus.STATE_FAILED,
                                         FineTuneStatus.STATE_CANCELLED, FineTuneStatus.STATE_RUNNING)
BC_OVERRIDES = "{image_size: 32, log_interval: 5, checkpoint_interval: 10}"


@pytest.fixture(scope="module")
def bag(tmp_path_factory) -> Path:
    return record_expert_bag(tmp_path_factory.mktemp("demos"), ["lift"], 2, 32)[0]


def make_learner(ros_graph, output_dir: Path, data_root: Path = Path("/")) -> Learner:
    return ros_graph.add(Learner(context=ros_graph.context, parameter_overrides=[
        Parameter("output_dir", value=str(output_dir)),
        Parameter("data_root", value=str(data_root)),
        Parameter("status_rate_hz", value=5.0),
    ]))


@pytest.fixture
def learner(ros_graph, tmp_path):
    node = make_learner(ros_graph, tmp_path / "runs")
    yield node
    if node.runner.is_running():
        node.runner.stop()
        node.runner.wait(30.0)


class Client:
    """Test-side view of the learner: service calls, the status topic and a fake policy load service."""

    def __init__(self, ros_graph, wait_for, fake_policy: bool = True) -> None:
        self.node = ros_graph.node("learner_test")
        self.wait_for = wait_for
        self.statuses: list[FineTuneStatus] = []
        self.loaded: list[str] = []
        self.refusal = ""
        """Non-empty: the fake policy refuses every checkpoint with this reason."""
        self.node.create_subscription(FineTuneStatus, "learner/status", self.statuses.append, 50)
        if fake_policy:
            self.node.create_service(LoadCheckpoint, "policy/load_checkpoint", self._load)
        self.start_client = self.node.create_client(StartFineTune, "learner/start_finetune")
        self.stop_client = self.node.create_client(StopFineTune, "learner/stop_finetune")
        self.status_client = self.node.create_client(GetFineTuneStatus, "learner/get_status")

    def _load(self, request, response):
        if self.refusal:
            response.success, response.message = False, self.refusal
            return response
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
    ("bc", [], "{learning_rate: .nan}", "learning_rate must be finite, got nan"),
    ("ppo", [], "{learning_rate: .inf}", "learning_rate must be finite, got inf"),
    ("ppo", [], "{learning_rate: 0}", "learning_rate must be in \\(0, 1\\], got 0.0"),
    ("ppo", [], "{time_budget_s: .nan}", "time_budget_s must be finite, got nan"),
    ("ppo", [], "{time_budget_s: -5}", "time_budget_s must be >= 0, got -5.0"),
    ("ppo", [], "{num_envs: 100000}", "num_envs must be <= 256"),
    ("ppo", [], "{image_size: 100000}", "image_size must be in \\[8, 512\\], got 100000"),
])
def test_invalid_requests_are_refused_with_the_reason(client, algorithm, datasets, overrides, reason):
    response = client.start(algorithm, datasets, overrides=overrides)
    assert not response.accepted and response.job_id == ""
    assert re.search(reason, response.message), response.message
    assert client.status().status.state == FineTuneStatus.STATE_IDLE


def test_a_step_budget_beyond_the_maximum_is_refused(client):
    response = client.start("ppo", steps=2**64 - 1, overrides="")
    assert not response.accepted and f"steps must be in [0, 1000000000] (0: the default), got {2**64 - 1}" in \
        response.message


def test_datasets_outside_the_data_root_are_refused_and_the_node_keeps_serving(ros_graph, wait_for, tmp_path, bag):
    node = make_learner(ros_graph, tmp_path / "runs", data_root=bag.parent)
    client = Client(ros_graph, wait_for)
    # /proc/1/cwd: following the link is refused to unprivileged processes (the crash of issue 17).
    for outside in ["/", "/proc/1/cwd", "../..", str(tmp_path)]:
        response = client.start("bc", [outside])
        assert not response.accepted and "the data root" in response.message, response.message
        assert str(bag.parent.resolve()) in response.message
    # Relative paths are taken from the data root.
    response = client.start("bc", [bag.name], steps=5)
    assert response.accepted, response.message
    assert client.wait_state({SUCCEEDED}).step == 5
    assert node.runner.status().job_id == response.job_id


def test_any_failure_while_starting_is_a_refusal_with_the_reason(client, learner, monkeypatch):
    def broken(request):
        raise PermissionError(13, "Permission denied", "/proc/1/cwd")

    monkeypatch.setattr(learner.runner, "start", broken)
    response = client.start("bc", ["x"])
    assert not response.accepted
    assert response.message == "could not start the job: PermissionError: [Errno 13] Permission denied: '/proc/1/cwd'"
    assert client.status().success  # still serving


def test_the_job_history_survives_a_restart_of_the_learner(ros_graph, wait_for, tmp_path, bag):
    first = make_learner(ros_graph, tmp_path / "runs")
    client = Client(ros_graph, wait_for)
    done = client.start("bc", [bag], steps=5)
    assert done.accepted and client.wait_state({SUCCEEDED}).job_id == done.job_id
    running = client.start("bc", [bag], steps=10**6)
    assert running.accepted and client.wait_state({RUNNING}).job_id == running.job_id
    # The learner node goes away with a job running (as when launch respawns it): a new one reads the history.
    ros_graph.executor.remove_node(first)
    ros_graph._nodes.remove(first)
    first.destroy_node()
    try:
        make_learner(ros_graph, tmp_path / "runs")
        old = client.status(done.job_id)
        assert old.success and old.status.state == SUCCEEDED and old.status.step == 5
        assert Path(old.status.best_checkpoint).is_dir()
        interrupted = client.status(running.job_id)
        assert interrupted.success and interrupted.status.state == FAILED
        assert "interrupted: the learner stopped while the job ran" in interrupted.status.message
        assert client.status().status.job_id == running.job_id  # the latest job
    finally:
        first.runner.stop()
        first.runner.wait(60.0)


def test_a_refused_checkpoint_shows_in_the_jobs_status_with_the_policys_reason(client, bag):
    client.refusal = "has image_size 32, the running policy 128: observations would not fit"
    response = client.start("bc", [bag], steps=10)
    assert response.accepted
    # The job's final status already carries the policy's answer.
    message = client.wait_state({SUCCEEDED}).message
    assert message == client.status(response.job_id).status.message
    assert message.startswith("finished; the policy refused step_0000001")
    assert message.endswith(": has image_size 32, the running policy 128: observations would not fit")


def test_a_checkpoint_of_another_input_size_is_refused_by_the_real_policy_node_and_the_job_says_why(
        ros_graph, wait_for, tmp_path, bag):
    policy = ros_graph.add(PolicyNode(context=ros_graph.context, parameter_overrides=[
        Parameter("model", value="film_keypoints"), Parameter("image_size", value=128)]))
    make_learner(ros_graph, tmp_path / "runs")
    client = Client(ros_graph, wait_for, fake_policy=False)
    response = client.start("bc", [bag], steps=10, overrides="{policy_type: film_keypoints, image_size: 32}")
    assert response.accepted, response.message
    status = client.wait_state({SUCCEEDED})
    assert status.job_id == response.job_id and status.message.startswith("finished; the policy refused step_")
    assert "has image_size 32, the running policy 128: observations would not fit" in status.message
    assert policy._version == 0


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
    action = ros_graph.action_client(FineTune, "learner/fine_tune")
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


def test_fine_tune_action_with_a_bad_goal_aborts_with_the_reason(ros_graph, client, wait_for):
    action = ros_graph.action_client(FineTune, "learner/fine_tune")
    assert action.wait_for_server(timeout_sec=10.0)
    send = action.send_goal_async(FineTune.Goal(algorithm="nope"))
    assert wait_for(send.done, 10.0)
    result_future = send.result().get_result_async()
    assert wait_for(result_future.done, 10.0)
    result = result_future.result().result
    assert not result.success and "unknown algorithm 'nope'" in result.message


def test_a_job_that_outlives_its_learner_node_no_longer_uses_the_nodes_publisher_or_client(ros_graph, tmp_path):
    # In process a job's thread goes on after destroy_node: a checkpoint handed to the destroyed load client raised
    # InvalidHandle and failed the job (seen in a loaded run of the restart test above).
    learner = Learner(context=ros_graph.context, parameter_overrides=[Parameter("output_dir", value=str(tmp_path))])
    learner.destroy_node()
    assert learner.runner.on_new_best(tmp_path / "step_00000010") is None
    learner.runner.on_change(learner.runner.status())


def test_destroying_the_learner_destroys_its_action_server(ros_graph, tmp_path):
    # rclpy's destroy_node leaves waitables alone; a live action server kept the node and its DDS participant alive
    learner = Learner(context=ros_graph.context, parameter_overrides=[Parameter("output_dir", value=str(tmp_path))])
    assert list(learner.waitables)
    learner.destroy_node()
    assert not list(learner.waitables)


@pytest.mark.parametrize("bad", [{"rollout_workers": -1}, {"num_threads": 0}])
def test_learner_parameters_refuse_negative_workers_and_zero_threads(bad):
    from rlvla_ros.nodes.learner import LearnerConfig

    with pytest.raises(ValueError, match="rollout_workers must be >= 0 and num_threads >= 1"):
        LearnerConfig(**bad)
