"""Jobs as processes: a SIGKILLed job leaves a loadable checkpoint; 2-rank torchrun jobs keep ranks identical."""

import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rlvla_ros.policies import load_policy
from rlvla_ros.training.experiments import record_expert_bag

VENV_BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def bag(tmp_path_factory) -> Path:
    return record_expert_bag(tmp_path_factory.mktemp("demos"), ["lift"], 2, 32)[0]


def _job_command(bag: Path | None, out: Path, steps: int, overrides: str, algorithm: str = "bc") -> list[str]:
    dataset = ["--dataset", str(bag)] if bag is not None else []
    return ["-m", "rlvla_ros.training", "--algorithm", algorithm, *dataset, "--steps", str(steps),
            "--overrides", overrides, "--output-dir", str(out)]


def test_sigkill_mid_run_leaves_the_latest_checkpoint_loadable(bag, tmp_path):
    out = tmp_path / "job"
    # A checkpoint every step: the job spends most of its time saving, so the kill lands mid-save or close to it.
    process = subprocess.Popen([sys.executable, *_job_command(
        bag, out, 100000, "{image_size: 32, checkpoint_interval: 1, log_interval: 1}")])
    try:
        deadline = time.monotonic() + 90.0
        while not (out / "latest").exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert (out / "latest").exists(), "the job wrote no checkpoint in 90 s"
        time.sleep(1.3)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10.0)
    finally:
        if process.poll() is None:
            process.kill()
    policy = load_policy(out / "latest")
    assert policy.config.image_size == 32
    latest = (out / "latest").resolve()
    state = json.loads((latest / "trainer_state.json").read_text())
    assert latest.name == f"step_{state['step']:08d}" and state["step"] >= 1


def test_two_rank_torchrun_job_keeps_parameters_identical(bag, tmp_path):
    command = [str(VENV_BIN / "torchrun"), "--standalone", "--nproc_per_node", "2", *_job_command(
        bag, tmp_path / "ddp", 15, "{image_size: 32, log_interval: 5, batch_size: 16, val_fraction: 0.0}"),
        "--print-params-digest"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stderr[-3000:]
    digests = dict(re.findall(r"rank (\d) params ([0-9a-f]{64})", result.stdout))
    # Ranks draw different minibatches (their RNGs are seeded with the rank), so equal parameters after 15 updates
    # mean the gradients were averaged across ranks.
    assert set(digests) == {"0", "1"} and digests["0"] == digests["1"]
    assert load_policy(tmp_path / "ddp" / "latest").config.image_size == 32
    assert len(list((tmp_path / "ddp" / "tensorboard").glob("events.out.tfevents.*"))) == 1  # rank 0 only


def test_two_rank_online_job_stops_on_its_time_budget_on_every_rank(tmp_path):
    # The ranks' clocks differ (an evaluation every iteration makes the gap large); they must still agree on the
    # last iteration, or one would wait forever in the next gradient all-reduce.
    overrides = ("{image_size: 32, num_envs: 2, episodes_per_iteration: 2, minibatch_size: 16, update_epochs: 1, "
                 "eval_interval: 1, eval_episodes: 8, time_budget_s: 8}")
    command = [str(VENV_BIN / "torchrun"), "--standalone", "--nproc_per_node", "2",
               *_job_command(None, tmp_path / "ppo", 10**6, overrides, algorithm="ppo"), "--print-params-digest"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stderr[-3000:]
    digests = dict(re.findall(r"rank (\d) params ([0-9a-f]{64})", result.stdout))
    assert set(digests) == {"0", "1"} and digests["0"] == digests["1"]
    state = json.loads((tmp_path / "ppo" / "latest" / "trainer_state.json").read_text())
    assert state["step"] >= 1
    # The ranks split the 8 validation seeds: the pooled success rate is a whole number of episodes out of 8.
    evaluations = json.loads((tmp_path / "ppo" / "metrics.json").read_text())["history"]["eval/id"]
    assert len(evaluations) >= 2 and all(abs(8 * rate - round(8 * rate)) < 1e-9 for _, rate in evaluations)
