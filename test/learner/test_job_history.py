"""The job runner's history file: written atomically on every state change, read back at start."""

import json

from rlvla_ros.training.jobs import HISTORY_NAME, JobRunner, JobState, JobStatus, read_history, status_to_dict


def test_a_job_recorded_running_comes_back_failed_as_interrupted(tmp_path):
    records = [status_to_dict(JobStatus(job_id="bc-1", state=JobState.SUCCEEDED, step=5, message="finished")),
               status_to_dict(JobStatus(job_id="ppo-2", state=JobState.RUNNING, step=3, message="started ppo"))]
    (tmp_path / HISTORY_NAME).write_text(json.dumps(records))
    runner = JobRunner(tmp_path)
    assert runner.job_ids() == ["bc-1", "ppo-2"]
    assert runner.status("bc-1").state == JobState.SUCCEEDED and runner.status("bc-1").step == 5
    latest = runner.status()
    assert (latest.job_id, latest.state, latest.step) == ("ppo-2", JobState.FAILED, 3)
    assert latest.message == "interrupted: the learner stopped while the job ran"
    assert not runner.is_running()


def test_an_unreadable_history_starts_empty_and_says_so(tmp_path, capsys):
    (tmp_path / HISTORY_NAME).write_text("{not json")
    assert read_history(tmp_path / HISTORY_NAME) == {}
    assert f"job history {tmp_path / HISTORY_NAME} not read" in capsys.readouterr().out
    assert JobRunner(tmp_path).status() == JobStatus()
