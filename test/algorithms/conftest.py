"""Shared fixtures: a tiny expert bag and a toy rollout source whose success depends only on the first action."""

from pathlib import Path

import numpy as np
import pytest
import torch

from rlvla_ros.data import EpisodeRecord
from rlvla_ros.training.experiments import record_expert_bag

TOY_IMAGE_SIZE = 32


@pytest.fixture(autouse=True)
def _one_thread_and_seeded():
    """One thread, and the same fresh-policy weights whatever ran before (tests that call ``iterate`` directly
    skip the seeding of ``run_job``)."""
    torch.set_num_threads(1)
    torch.manual_seed(0)


@pytest.fixture(scope="session")
def expert_bag(tmp_path_factory) -> Path:
    """Four scripted-expert lift episodes (32 px images) in one MCAP bag."""
    bag, success_rate = record_expert_bag(tmp_path_factory.mktemp("demos"), ["lift"], 4, TOY_IMAGE_SIZE)
    assert success_rate == 1.0
    return bag


class ToySource:
    """One-chunk episodes from a fixed observation; success when the first row's dx exceeds ``threshold``.

    Learnable by any policy-gradient method: move the dx mean up."""

    def __init__(self, threshold: float = 0.6) -> None:
        self.threshold = threshold
        self.collected = 0

    def collect(self, policy, specs, temperature):
        n = len(specs)
        batch = {
            "image": np.full((n, TOY_IMAGE_SIZE, TOY_IMAGE_SIZE, 3), 127, np.uint8),
            "proprio": np.zeros((n, 6), np.float32),
            "instruction": ["lift the red block"] * n,
        }
        out = policy.predict(batch, temperature=temperature)
        episodes = []
        for i, spec in enumerate(specs):
            actions = out.actions[i].numpy()
            success = bool(actions[0, 0] > self.threshold)
            rewards = np.zeros(len(actions), np.float32)
            rewards[-1] = float(success)
            episodes.append(EpisodeRecord(
                episode_id=f"toy-{self.collected}", instruction=batch["instruction"][i],
                images=np.repeat(batch["image"][i:i + 1], len(actions), axis=0),
                proprio=np.zeros((len(actions), 6), np.float32), actions=actions, rewards=rewards,
                successes=rewards > 0, log_probs=out.log_probs[i].numpy(), task=spec.task, split=spec.split,
                seed=spec.seed,
                latents=None if out.latents is None else np.repeat(out.latents[i : i + 1].numpy(), len(actions), 0),
            ))
            self.collected += 1
        return episodes

    def close(self):
        pass


@pytest.fixture
def toy_source() -> ToySource:
    return ToySource()
