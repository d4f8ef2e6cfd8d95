"""The fine-tuning client (Python commander and `rlvla finetune`) against a learner served in the test's graph."""

import os
import re
import pathlib
import signal
import subprocess
import sys

import pytest
import yaml
from rclpy.node import Node

from rlvla_ros.cli.finetune import parse_overrides
from rlvla_ros.msg import FineTuneStatus, Metric
from rlvla_ros.ros.commander import FineTuneCommander
from rlvla_ros.srv import GetFineTuneStatus, StartFineTune, StopFineTune

REPO = pathlib.Path(__file__).resolve().parents[2]


class FakeLearner(Node):
    """Accepts `bc` only; each status query advances the job one of three steps, then it succeeds. The first
    `lost_status_replies` status replies are lost on the way, as when the service has not yet discovered a new
    client's reply reader; `mute` answers no status query at all."""

    def __init__(self, context):
        super().__init__("learner", namespace="/test_rlvla", context=context)
        self.requests = []
        self.total_steps = 3
        self.status = FineTuneStatus()
        self.lost_status_replies = 0
        self.mute = False
        self.create_service(StartFineTune, "~/start_finetune", self._start)
        self.create_service(StopFineTune, "~/stop_finetune", self._stop)
        status_service = self.create_service(GetFineTuneStatus, "~/get_status", self._get_status)
        send_response = status_service.send_response

        def send_or_lose(response, header):
            if self.mute or self.lost_status_replies > 0:
                self.lost_status_replies -= 1
                return
            send_response(response, header)

        status_service.send_response = send_or_lose

    def _start(self, request, response):
        self.requests.append(request)
        if request.algorithm != "bc":
            response.accepted, response.message = False, f"unknown algorithm '{request.algorithm}'"
            return response
        self.status = FineTuneStatus(job_id="job-1", state=FineTuneStatus.STATE_RUNNING, algorithm="bc",
                                     step=0, total_steps=self.total_steps)
        response.accepted, response.job_id, response.message = True, "job-1", f"bc for {self.total_steps} steps"
        return response

    def _stop(self, request, response):
        self.status.state = FineTuneStatus.STATE_CANCELLED
        response.success, response.message = True, f"stopping {self.status.job_id}"
        return response

    def _get_status(self, request, response):
        if request.job_id not in ("", self.status.job_id) or not self.status.job_id:
            response.success, response.message = False, f"no job '{request.job_id}'"
            return response
        if self.status.state == FineTuneStatus.STATE_RUNNING:
            self.status.step += 1
            self.status.progress = self.status.step / self.status.total_steps
            self.status.metrics = [Metric(name="loss", value=1.0 / self.status.step)]
            if self.status.step == self.status.total_steps:
                self.status.state = FineTuneStatus.STATE_SUCCEEDED
                self.status.best_checkpoint = "/tmp/best"
        response.success, response.status = True, self.status
        return response


@pytest.fixture
def learner(ros_graph):
    return ros_graph.add(FakeLearner(ros_graph.context))


@pytest.fixture
def commander(ros_graph):
    node = FineTuneCommander("/test_rlvla/learner", context=ros_graph.context)
    yield node
    node.destroy_node()


def test_start_sends_algorithm_datasets_steps_and_overrides_as_yaml(learner, commander):
    result = commander.start_finetune("bc", datasets=["/data/bag_0"], steps=3, overrides={"learning_rate": 0.001})
    assert (result.accepted, result.job_id) == (True, "job-1")
    request = learner.requests[0]
    assert (request.algorithm, list(request.datasets), request.steps) == ("bc", ["/data/bag_0"], 3)
    assert yaml.safe_load(request.overrides_yaml) == {"learning_rate": 0.001}


def test_refusal_carries_the_learners_message(learner, commander):
    result = commander.start_finetune("nope")
    assert not result.accepted
    assert result.message == "unknown algorithm 'nope'"


def test_wait_for_job_reports_progress_until_the_job_succeeds(learner, commander):
    job = commander.start_finetune("bc")
    seen = []
    final = commander.wait_for_job(job.job_id, on_progress=lambda status: seen.append(status.step), timeout_s=10,
                                   poll_period_s=0.0)
    assert final.state == FineTuneStatus.STATE_SUCCEEDED
    assert final.best_checkpoint == "/tmp/best"
    assert seen == sorted(seen) and seen[-1] == 3


def test_a_lost_status_reply_is_asked_again(learner, commander):
    commander.start_finetune("bc")
    learner.lost_status_replies = 1
    assert commander.get_status().step == 2  # the lost reply's query advanced the job too
    assert learner.lost_status_replies == 0


def test_wait_for_job_follows_the_job_through_lost_status_replies(learner, commander):
    job = commander.start_finetune("bc")
    learner.lost_status_replies = 2
    final = commander.wait_for_job(job.job_id, timeout_s=30, poll_period_s=0.0)
    assert (final.state, final.step) == (FineTuneStatus.STATE_SUCCEEDED, 3)
    assert learner.lost_status_replies == 0


def test_wait_for_job_gives_up_on_a_learner_that_says_nothing(learner, commander):
    job = commander.start_finetune("bc")
    learner.mute = True
    with pytest.raises(TimeoutError, match="no status of job job-1 from /test_rlvla/learner for 1.0 s"):
        commander.wait_for_job(job.job_id, poll_period_s=0.0, silence_s=1.0)


def test_status_of_an_unknown_job_raises_with_the_learners_message(learner, commander):
    commander.start_finetune("bc")
    with pytest.raises(RuntimeError, match="no job 'other'"):
        commander.get_status("other")


def test_missing_learner_times_out_with_a_hint(ros_graph):
    commander = FineTuneCommander("/nowhere/learner", context=ros_graph.context)
    try:
        with pytest.raises(TimeoutError, match="not available"):
            commander.start_finetune("bc", timeout_s=0.5)
    finally:
        commander.destroy_node()


def test_overrides_parse_values_as_yaml_and_refuse_malformed_items():
    assert parse_overrides(["lr=1e-3", "tasks=[lift, push]", "name=x"]) == {"lr": 1e-3, "tasks": ["lift", "push"],
                                                                           "name": "x"}
    with pytest.raises(ValueError, match="malformed override 'oops'"):
        parse_overrides(["oops"])


def rlvla_finetune(*arguments: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "rlvla_ros.cli", "finetune", "--learner", "/test_rlvla/learner",
                           *arguments], cwd=REPO, env=os.environ, capture_output=True, text=True, timeout=60)


def test_cli_start_follows_the_job_to_success(learner):
    result = rlvla_finetune("start", "bc", "--steps", "3", "--set", "learning_rate=0.01")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "started job job-1: bc for 3 steps" in result.stdout
    assert re.search(r"job job-1: bc succeeded \(3/3 steps, \d+ s, 100 % done\)", result.stdout), result.stdout
    assert yaml.safe_load(learner.requests[0].overrides_yaml) == {"learning_rate": 0.01}


def test_cli_start_ends_on_sigterm_like_on_ctrl_c_without_a_traceback(learner, wait_for):
    learner.total_steps = 10**6  # a job that outlasts the test
    client = subprocess.Popen([sys.executable, "-m", "rlvla_ros.cli", "finetune", "--learner", "/test_rlvla/learner",
                               "start", "bc"], cwd=REPO, env=os.environ, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    try:
        assert wait_for(lambda: learner.status.step > 0, 60.0)  # the client follows the job
        client.send_signal(signal.SIGTERM)
        stdout, stderr = client.communicate(timeout=60)
    finally:
        client.kill()
    assert client.returncode == 130, stdout + stderr
    assert "interrupted; the job keeps running" in stdout
    assert "Traceback" not in stderr, stderr


def test_a_signal_that_invalidates_the_context_mid_call_is_an_interruption_not_an_error(capsys):
    # SIGTERM shuts the context down; if it lands while the commander makes a timer, rclpy raises an RCLError about
    # the invalid context (a RuntimeError), which must not be reported as a failed call
    import argparse

    import rclpy

    from rlvla_ros.cli.finetune import _with_commander

    def shut_down_then_make_a_timer(commander):
        rclpy.shutdown()
        commander.create_timer(1.0, lambda: None)

    assert _with_commander(argparse.Namespace(learner="/test_rlvla/learner"), shut_down_then_make_a_timer) == 130
    assert "interrupted; the job keeps running" in capsys.readouterr().out


def test_cli_reports_a_refusal_and_exits_nonzero(learner):
    result = rlvla_finetune("start", "nope")
    assert result.returncode == 1
    assert "refused: unknown algorithm 'nope'" in result.stdout


def test_cli_refuses_a_malformed_override_before_calling_the_learner(learner):
    result = rlvla_finetune("start", "bc", "--set", "no_equals_sign")
    assert result.returncode == 2
    assert "malformed override 'no_equals_sign'" in result.stdout
    assert learner.requests == []


def test_cli_stop_and_status(learner):
    learner.status = FineTuneStatus(job_id="job-1", state=FineTuneStatus.STATE_RUNNING, algorithm="bc", total_steps=9)
    stopped = rlvla_finetune("stop")
    assert stopped.returncode == 0 and "stopping job-1" in stopped.stdout
    status = rlvla_finetune("status")
    assert "job job-1: bc cancelled" in status.stdout
