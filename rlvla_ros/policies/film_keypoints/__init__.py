"""Gaussian chunk policy on FiLM-conditioned conv keypoints (trained from scratch) and MiniLM embeddings."""

from rlvla_ros.policies.film_keypoints.configuration_film_keypoints import FilmKeypointsConfig
from rlvla_ros.policies.film_keypoints.modeling_film_keypoints import FilmKeypointsPolicy

__all__ = ["FilmKeypointsConfig", "FilmKeypointsPolicy"]
