"""Copies of the package's node parameter files with some values changed: a `config_dir` for a launch file."""

from __future__ import annotations

import shutil
from pathlib import Path

import yaml
from ament_index_python.packages import get_package_share_directory


def package_config_dir() -> Path:
    """The installed `share/rlvla_ros/config` directory."""
    return Path(get_package_share_directory("rlvla_ros")) / "config"


def write_config_overlay(destination: str | Path, overrides: dict[str, dict]) -> Path:
    """Copy every parameter file to `destination` and set `overrides[node][parameter]`; returns `destination`.

    A node or parameter the package's files do not have is a KeyError, so a typo cannot silently do nothing.
    """
    destination = Path(destination)
    if destination.exists():
        shutil.rmtree(destination)
    # Follows the links of a symlink install; a link left by a deleted source file is skipped.
    shutil.copytree(package_config_dir(), destination, ignore_dangling_symlinks=True)
    for node, parameters in overrides.items():
        path = destination / f"{node}.yaml"
        if not path.is_file():
            raise KeyError(f"no parameter file for node '{node}' in {package_config_dir()}")
        document = yaml.safe_load(path.read_text())
        (section,) = document.values()
        for name, value in parameters.items():
            if name not in section["ros__parameters"]:
                raise KeyError(f"{path.name} has no parameter '{name}'")
            section["ros__parameters"][name] = value
        path.write_text(yaml.safe_dump(document, sort_keys=False))
    return destination
