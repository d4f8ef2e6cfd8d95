"""JobContext: latest/best checkpoint links, pruning, the new-best callback, curves and metrics files."""

import json

import matplotlib.image
import pytest
import torch

from rlvla_ros.algorithms.base import JobContext, TrainerConfig
from rlvla_ros.policies import new_policy
from rlvla_ros.policies import load_policy


@pytest.fixture(scope="module")
def policy():
    return new_policy("frozen_encoder", image_size=32)


def test_latest_follows_every_save_and_best_only_improvements(policy, tmp_path):
    announced = []
    context = JobContext(config=TrainerConfig(), output_dir=tmp_path, steps=3, on_new_best=announced.append,
                         tensorboard=False)
    for step, score in [(1, 0.1), (2, 0.5), (3, 0.3)]:
        with torch.no_grad():
            policy.log_std.fill_(-float(step))
        context.save_checkpoint(policy, step, {"score": score}, score=score)
    assert (tmp_path / "latest").resolve().name == "step_00000003"
    assert (tmp_path / "best").resolve().name == "step_00000002"
    assert [p.name for p in announced] == ["step_00000001", "step_00000002"]
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["step_00000002", "step_00000003"]
    assert load_policy(tmp_path / "best").log_std[0].item() == -2.0
    assert load_policy(tmp_path / "latest").log_std[0].item() == -3.0
    assert json.loads((tmp_path / "best" / "trainer_state.json").read_text())["score"] == 0.5


def test_only_a_finite_evaluation_of_finite_weights_after_the_start_is_handed_over(policy, tmp_path):
    announced = []
    context = JobContext(config=TrainerConfig(), output_dir=tmp_path, steps=3, on_new_best=announced.append,
                         tensorboard=False)
    context.save_checkpoint(policy, 0, score=0.1)  # the start policy's baseline: best, but not handed over
    assert (tmp_path / "best").resolve().name == "step_00000000" and announced == []
    context.save_checkpoint(policy, 1, score=float("nan"))
    context.save_checkpoint(policy, 2, score=float("inf"))
    broken = new_policy("frozen_encoder", image_size=32)
    with torch.no_grad():
        next(broken.parameters()).fill_(float("nan"))
    context.save_checkpoint(broken, 3, score=0.9)
    assert (tmp_path / "best").resolve().name == "step_00000000" and announced == []
    context.save_checkpoint(policy, 4, score=0.5)
    assert [p.name for p in announced] == ["step_00000004"]


def test_saves_without_score_never_become_best(policy, tmp_path):
    context = JobContext(config=TrainerConfig(), output_dir=tmp_path, steps=1, tensorboard=False)
    context.save_checkpoint(policy, 1)
    assert (tmp_path / "latest").exists() and not (tmp_path / "best").exists()


def test_close_writes_curve_and_metrics_history(tmp_path):
    progress = []
    context = JobContext(config=TrainerConfig(), output_dir=tmp_path, steps=3,
                         on_progress=lambda step, metrics: progress.append(step))
    for step in range(1, 4):
        context.log(step, {"loss": 1.0 / step, "eval/id": 0.1 * step})
    context.close({"loss": 1 / 3})
    assert progress == [1, 2, 3]
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved["history"]["loss"] == [[1, 1.0], [2, 0.5], [3, 1 / 3]] and saved["final"]["loss"] == 1 / 3
    image = matplotlib.image.imread(tmp_path / "learning_curve.png")
    assert image.shape[0] > 100 and image.shape[1] > 300
    assert json.loads((tmp_path / "config.json").read_text())["seed"] == 0
    assert list((tmp_path / "tensorboard").glob("events.out.tfevents.*"))


def test_non_writing_rank_touches_no_files(policy, tmp_path):
    context = JobContext(config=TrainerConfig(), output_dir=tmp_path / "rank1", steps=1, write_files=False)
    context.log(1, {"loss": 1.0})
    context.save_checkpoint(policy, 1, score=1.0)
    context.close()
    assert not (tmp_path / "rank1").exists()
