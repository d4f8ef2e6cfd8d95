"""Success classifier: checkpoints, calibration, and held-out precision/recall on simulated episodes."""

import dataclasses
import json

import numpy as np
import pytest
import torch

from rlvla_ros.data import BagWriter, write_episode
from rlvla_ros.rewards import (
    LabelledEpisodeConfig,
    SuccessClassifier,
    SuccessClassifierConfig,
    SuccessTrainingConfig,
    calibrate_threshold,
    collect_labelled_episodes,
    evaluate_success_classifier,
    frame_labels,
    instruction_ngrams,
    train_success_classifier,
    train_success_classifier_from_datasets,
    with_overrides,
)

SMALL = SuccessClassifierConfig(image_size=32, channels=[8, 16], text_buckets=64, hidden_dim=16)


@pytest.fixture(autouse=True)
def one_torch_thread():
    # Small convolutions on a shared 2-core machine run several times faster on one thread than on two.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_ngrams_tell_which_block_goes_on_which():
    first = set(instruction_ngrams("put the red block on the yellow block", 3))
    swapped = set(instruction_ngrams("put the yellow block on the red block", 3))
    assert first != swapped and "put the red" in first and "put the red" not in swapped


def test_checkpoint_round_trip_keeps_outputs_threshold_and_proprio_statistics(tmp_path):
    config = dataclasses.replace(SMALL, proprio_names=["a", "b"], threshold=0.37)
    model = SuccessClassifier(config)
    model.set_proprio_normalization(np.array([[0.0, 1.0], [2.0, 5.0]]))
    images = np.random.default_rng(0).integers(0, 256, (3, 40, 40, 3), dtype=np.uint8)
    proprio = np.array([[0.1, 2.0], [1.0, 3.0], [2.0, 4.0]], dtype=np.float32)
    instructions = ["lift the red block", "lift the blue block", "push the red block onto the green target"]
    expected = model.predict_proba(images, instructions, proprio)
    model.save_pretrained(tmp_path / "ckpt")
    assert sorted(p.name for p in (tmp_path / "ckpt").iterdir()) == ["config.json", "model.safetensors"]
    loaded = SuccessClassifier.from_pretrained(tmp_path / "ckpt")
    np.testing.assert_allclose(loaded.predict_proba(images, instructions, proprio), expected, atol=1e-6)
    assert loaded.threshold == 0.37 and loaded.config == config
    torch.testing.assert_close(loaded.proprio_mean, torch.tensor([1.0, 3.0]))
    with pytest.raises(ValueError, match="proprioception"):
        loaded.predict_proba(images, instructions)


def test_loading_refuses_pickles_and_foreign_configs(tmp_path):
    SuccessClassifier(SMALL).save_pretrained(tmp_path / "ckpt")
    torch.save({"weights": torch.zeros(3)}, tmp_path / "ckpt" / "model.safetensors")  # a pickle in disguise
    with pytest.raises(ValueError, match="not a safetensors file"):
        SuccessClassifier.from_pretrained(tmp_path / "ckpt")
    config = json.loads((tmp_path / "ckpt" / "config.json").read_text())
    (tmp_path / "ckpt" / "config.json").write_text(json.dumps({**config, "model_type": "token_vla"}))
    with pytest.raises(ValueError, match="model_type"):
        SuccessClassifier.from_pretrained(tmp_path / "ckpt")
    with pytest.raises(FileNotFoundError):
        SuccessClassifier.from_pretrained(tmp_path / "missing")


def test_threshold_calibration_maximises_f1_or_meets_a_precision_floor():
    probabilities = np.array([0.1, 0.2, 0.35, 0.4, 0.6, 0.7, 0.9])
    labels = np.array([0, 0, 1, 0, 1, 1, 1], dtype=bool)
    # accepting >= 0.35 catches all 4 successes with one false alarm (F1 0.89); the threshold sits halfway down
    assert calibrate_threshold(probabilities, labels) == pytest.approx((0.35 + 0.2) / 2)
    # precision 1.0 is only reached by accepting >= 0.6 (recall 0.75)
    assert calibrate_threshold(probabilities, labels, min_precision=1.0) == pytest.approx((0.6 + 0.4) / 2)
    with pytest.raises(ValueError):
        calibrate_threshold(probabilities, np.ones(7, bool))


def test_overrides_reach_training_and_model_fields_and_refuse_typos():
    config = with_overrides(SuccessTrainingConfig(), {"steps": 10, "image_size": 48})
    assert (config.steps, config.model.image_size) == (10, 48)
    with pytest.raises(ValueError, match="unknown success_classifier options"):
        with_overrides(SuccessTrainingConfig(), {"learnig_rate": 1.0})


def test_labelled_episodes_mix_successes_and_near_misses():
    episodes = collect_labelled_episodes(LabelledEpisodeConfig(tasks=("lift",), episodes_per_task=6, image_size=32,
                                                               kind_weights=(0.5, 0.5, 0.0), seed=3))
    kinds = {e.episode_id.rsplit("-", 1)[1]: e for e in episodes}
    assert set(kinds) == {"expert", "near_miss"}
    expert, near_miss = kinds["expert"], kinds["near_miss"]
    assert expert.success and frame_labels(expert).sum() == 8 and not frame_labels(expert)[0]
    assert not near_miss.success and not frame_labels(near_miss).any()


def test_classifier_finds_lift_successes_in_held_out_episodes(tmp_path):
    # Small images and one task keep this under a minute; the full four-task figure is measured offline.
    def episodes(count: int, seed: int):
        return collect_labelled_episodes(LabelledEpisodeConfig(tasks=("lift",), episodes_per_task=count,
                                                               image_size=64, seed=seed))

    train, held_out = episodes(150, seed=0), episodes(30, seed=10_000)
    config = SuccessTrainingConfig(steps=250, eval_interval=125, model=SuccessClassifierConfig(
        image_size=48, channels=[16, 32, 32], hidden_dim=64))
    model, metrics = train_success_classifier(train, config)
    assert metrics["val_f1"] > 0.9, metrics
    model.save_pretrained(tmp_path / "classifier")
    loaded = SuccessClassifier.from_pretrained(tmp_path / "classifier")
    result = evaluate_success_classifier(loaded, held_out)
    assert result["positives"] >= 60 and result["negatives"] >= 300, result
    assert result["precision"] >= 0.9 and result["recall"] >= 0.9, result


def test_learner_entry_point_trains_from_recorded_bags_and_saves(tmp_path):
    episodes = collect_labelled_episodes(LabelledEpisodeConfig(tasks=("lift",), episodes_per_task=4, image_size=32,
                                                               kind_weights=(1.0, 0.0, 0.0)))
    with BagWriter(tmp_path / "bags") as writer:
        for episode in episodes:
            write_episode(writer, episode)
    progress = []
    model, metrics = train_success_classifier_from_datasets(
        [tmp_path / "bags"], tmp_path / "out", steps=4,
        overrides={"eval_interval": 2, "val_fraction": 0.25, **{k: v for k, v in dataclasses.asdict(SMALL).items()
                                                               if k in ("image_size", "channels", "hidden_dim")}},
        progress=lambda step, total, values: progress.append((step, total)))
    assert progress == [(2, 4), (4, 4)]
    assert (metrics["steps"], metrics["train_episodes"], metrics["val_episodes"]) == (4, 3, 1)
    assert SuccessClassifier.from_pretrained(tmp_path / "out").threshold == model.threshold
