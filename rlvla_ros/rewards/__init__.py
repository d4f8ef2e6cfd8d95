"""Rewards: the learned success classifier (train, calibrate, save, load), sim episodes labelled for it, dense
shaping terms, and the episode manager's bookkeeping. ROS-free: no rclpy here.

Names are imported on first use, so a node that only needs the episode bookkeeping does not load torch or MuJoCo.
"""

import importlib

_EXPORTS = {
    "SuccessClassifier": "success_classifier",
    "SuccessClassifierConfig": "success_classifier",
    "instruction_ngrams": "success_classifier",
    "SuccessTrainingConfig": "training",
    "binary_metrics": "training",
    "calibrate_threshold": "training",
    "evaluate_success_classifier": "training",
    "split_episodes": "training",
    "train_success_classifier": "training",
    "train_success_classifier_from_datasets": "training",
    "with_overrides": "training",
    "LabelledEpisodeConfig": "labelled_episodes",
    "collect_labelled_episodes": "labelled_episodes",
    "frame_labels": "labelled_episodes",
    "label_counts": "labelled_episodes",
    "PotentialShaper": "shaping",
    "EpisodeSchedule": "episode_book",
    "ScheduledEpisode": "episode_book",
    "RunningEpisode": "episode_book",
    "SuccessStats": "episode_book",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
