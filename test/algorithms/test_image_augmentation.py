"""Image augmentation in behaviour cloning: the training images are shifted and brightened at every pass, the
validation images are not, and the same seed trains the same weights."""

import numpy as np
import pytest
import torch

from rlvla_ros.algorithms.bc import BcConfig
from rlvla_ros.algorithms.policy_inputs import PolicyInputs
from rlvla_ros.contract import ACTION_DIM
from rlvla_ros.policies import FilmKeypointsConfig, FilmKeypointsPolicy
from rlvla_ros.policies.augmentation import shift_and_brighten
from rlvla_ros.training.__main__ import parameters_digest
from rlvla_ros.training.jobs import JobRequest, prepare_job, run_job



def observations(batch: int, size: int) -> dict:
    rng = np.random.default_rng(0)
    return {"image": rng.integers(0, 256, (batch, size, size, 3), dtype=np.uint8),
            "proprio": rng.normal(size=(batch, 6)).astype(np.float32), "instruction": ["lift the red block"] * batch}


def tiny_film(**kwargs) -> FilmKeypointsPolicy:
    return FilmKeypointsPolicy(FilmKeypointsConfig(chunk_size=2, image_size=16, channels=[4], strides=[2],
                                                   hidden_size=8, proprio_dim=6, **kwargs))


def test_policy_inputs_augment_the_images_at_the_policy_input_size_at_every_pass():
    policy = tiny_film()
    seen = []

    def augment(images):
        seen.append(images.clone())
        return shift_and_brighten(images, 2, 0.0, generator)

    generator = torch.Generator().manual_seed(0)
    inputs = PolicyInputs(policy, observations(4, 32), augment=augment)
    actions, mask = torch.zeros(2, 2, ACTION_DIM), torch.ones(2, 2, dtype=torch.bool)
    inputs.imitation_loss(np.array([0, 1]), actions, mask)
    inputs.value(np.array([2, 3]))
    assert [tuple(images.shape) for images in seen] == [(2, 16, 16, 3)] * 2


def test_augmentation_is_refused_for_frozen_features_and_bad_settings():
    policy = tiny_film(freeze_encoder=True)
    with pytest.raises(ValueError, match="augmentation needs a trainable image encoder"):
        PolicyInputs(policy, observations(2, 16), augment=lambda images: images)
    with pytest.raises(ValueError, match="shift_px must be >= 0"):
        BcConfig(shift_px=-1)
    with pytest.raises(ValueError, match="brightness must be < 1"):
        BcConfig(brightness=1.0)


def _bc_digest(expert_bag, output_dir, augmentation: str) -> str:
    trainer, context = prepare_job(
        JobRequest("bc", [str(expert_bag)], 6,
                   "{policy_type: film_keypoints, image_size: 32, log_interval: 3, checkpoint_interval: 3, "
                   f"val_fraction: 0.25, {augmentation}}}"),
        output_dir,
    )
    run_job(trainer, context)
    return parameters_digest(context.policy)


def test_bc_with_augmentation_trains_the_same_weights_from_the_same_seed_and_others_without(expert_bag, tmp_path):
    augmented = _bc_digest(expert_bag, tmp_path / "a", "shift_px: 2, brightness: 0.1")
    assert _bc_digest(expert_bag, tmp_path / "b", "shift_px: 2, brightness: 0.1") == augmented
    assert _bc_digest(expert_bag, tmp_path / "c", "shift_px: 0, brightness: 0.0") != augmented
