"""Locate and open rosbag2 bags for reading without ROS running; every failure is a ValueError naming the path."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import yaml

from rosbags.highlevel import AnyReader, AnyReaderError
from rosbags.rosbag2 import ReaderError
from rosbags.typesys import TypesysError

from rlvla_ros.data.bag_writer import TOPIC_COUNTS_KEY
from rlvla_ros.data.recovery import bag_needs_recovery
from rlvla_ros.data.typestore import make_typestore

METADATA = "metadata.yaml"


def find_bags(path: Path | str) -> list[Path]:
    """Bag directories at `path`: the bag itself, or every bag below a parent folder, sorted by path."""
    path = Path(path)
    if not path.exists():
        raise ValueError(f"{path} does not exist")
    if not path.is_dir():
        raise ValueError(f"{path} is not a directory: pass a rosbag2 bag directory or a folder of bags")
    candidates = [path, *sorted(p for p in path.rglob("*") if p.is_dir() and not p.name.startswith("."))]
    unfinished = [p for p in candidates if bag_needs_recovery(p)]
    if unfinished:
        raise ValueError(
            f"unfinished recording(s) without metadata.yaml: {', '.join(map(str, unfinished))}; "
            "run recover_bag on them first"
        )
    bags = [p for p in candidates if (p / METADATA).is_file()]
    if not bags:
        raise ValueError(f"no rosbag2 bag (directory with {METADATA}) found at {path}")
    return bags


@contextmanager
def open_bag(path: Path | str) -> Iterator[AnyReader]:
    """Open one bag directory with rosbags' AnyReader (the bag's own type definitions, ours as fallback)."""
    path = Path(path)
    if bag_needs_recovery(path):
        raise ValueError(f"{path} is an unfinished recording without {METADATA}; run recover_bag on it first")
    if not (path / METADATA).is_file():
        raise ValueError(f"{path} is not a rosbag2 bag directory (no {METADATA})")
    reader = AnyReader([path], default_typestore=make_typestore())
    try:
        reader.open()
    except (AnyReaderError, ReaderError, TypesysError, OSError, KeyError) as err:
        raise ValueError(f"cannot open bag {path}: {err}") from err
    try:
        yield reader
    finally:
        reader.close()


def recording_counts(paths: list[Path]) -> dict[str, dict[str, int]]:
    """Per topic, the messages the recorder received, wrote and dropped, summed over the bags at ``paths``
    (from each bag's metadata.yaml; bags written by other tools carry none and add nothing)."""
    totals: dict[str, dict[str, int]] = {}
    for path in paths:
        metadata = yaml.safe_load((Path(path) / METADATA).read_text(encoding="utf-8")) or {}
        custom = (metadata.get("rosbag2_bagfile_information") or {}).get("custom_data") or {}
        for topic, counts in json.loads(custom.get(TOPIC_COUNTS_KEY, "{}")).items():
            total = totals.setdefault(topic, {"received": 0, "written": 0, "dropped": 0})
            for key in total:
                total[key] += int(counts.get(key, 0))
    return totals
