"""Dataset index: per-bag summaries cached as JSON inside each bag, aggregated into `dataset_info`."""

from __future__ import annotations

import json
import os
import tempfile
from collections import defaultdict
from pathlib import Path

from rlvla_ros.data.bag_episodes import scan_bag
from rlvla_ros.data.bag_reader import METADATA, find_bags

INDEX_FILE = "rlvla_index.json"
_INDEX_FORMAT = 1


def _fingerprint(bag: Path) -> list[list]:
    """Name, size and mtime of the files that make up the bag: any change invalidates the cached index."""
    files = [bag / METADATA, *sorted(bag.glob("*.mcap"))]
    return [[f.name, f.stat().st_size, f.stat().st_mtime_ns] for f in files]


def _write_json_atomic(path: Path, data: dict) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as stream:
            json.dump(data, stream, indent=1)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _rate_hz(count: int, span_ns: int) -> float:
    return (count - 1) / (span_ns * 1e-9) if count > 1 and span_ns > 0 else 0.0


def bag_index(bag: Path | str) -> dict:
    """Index of one bag (topics with counts and rates, episode summaries), from the cache if still valid.

    The cache is `<bag>/rlvla_index.json`, written atomically; a read-only bag is indexed without caching.
    """
    bag = Path(bag)
    fingerprint = _fingerprint(bag)
    cache = bag / INDEX_FILE
    if cache.is_file():
        try:
            cached = json.loads(cache.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            cached = None
        valid = isinstance(cached, dict) and cached.get("format") == _INDEX_FORMAT
        if valid and cached.get("fingerprint") == fingerprint:
            return cached
    scanned = scan_bag(bag)
    topics = {
        name: {
            "type": stats["type"],
            "count": stats["count"],
            "span_ns": stats["last_ns"] - stats["first_ns"],
            "rate_hz": _rate_hz(stats["count"], stats["last_ns"] - stats["first_ns"]),
        }
        for name, stats in sorted(scanned["topics"].items())
    }
    starts = [s["first_ns"] for s in scanned["topics"].values()]
    ends = [s["last_ns"] for s in scanned["topics"].values()]
    index = {
        "format": _INDEX_FORMAT,
        "fingerprint": fingerprint,
        "bag": str(bag),
        "start_time_ns": min(starts, default=0),
        "duration_s": (max(ends) - min(starts)) * 1e-9 if starts else 0.0,
        "message_count": sum(t["count"] for t in topics.values()),
        "size_bytes": sum(f[1] for f in fingerprint),
        "topics": topics,
        "episodes": scanned["episodes"],
    }
    try:
        _write_json_atomic(cache, index)
    except OSError:
        pass  # read-only dataset: the index is just not cached
    return index


def _group_stats(episodes: list[dict], key: str) -> dict[str, dict]:
    groups: dict[str, dict] = defaultdict(lambda: {"episodes": 0, "successes": 0, "steps": 0})
    for episode in episodes:
        group = groups[episode[key]]
        group["episodes"] += 1
        group["successes"] += int(episode["success"])
        group["steps"] += episode["steps"]
    return {name: groups[name] for name in sorted(groups)}


def dataset_info(path: Path | str) -> dict:
    """Summary of a dataset (one bag directory or a folder of bags), backing `rlvla dataset info`.

    Episode counts, steps, successes and the per-task / per-split tables count complete episodes only (the ones
    `episodes_from_bag` returns by default); `incomplete_episodes` counts the rest.
    """
    indexes = [bag_index(bag) for bag in find_bags(path)]
    all_episodes = [episode for index in indexes for episode in index["episodes"]]
    episodes = [episode for episode in all_episodes if episode["complete"]]
    topics: dict[str, dict] = {}
    for index in indexes:
        for name, stats in index["topics"].items():
            total = topics.setdefault(name, {"type": stats["type"], "count": 0, "span_ns": 0, "intervals": 0})
            total["count"] += stats["count"]
            total["span_ns"] += stats["span_ns"]
            total["intervals"] += max(stats["count"] - 1, 0)
    successes = sum(int(e["success"]) for e in episodes)
    return {
        "path": str(path),
        "bags": [
            {
                "path": index["bag"],
                "episodes": sum(int(e["complete"]) for e in index["episodes"]),
                "duration_s": index["duration_s"],
                "message_count": index["message_count"],
                "size_bytes": index["size_bytes"],
            }
            for index in indexes
        ],
        "episodes": len(episodes),
        "incomplete_episodes": len(all_episodes) - len(episodes),
        "steps": sum(e["steps"] for e in episodes),
        "successes": successes,
        "success_rate": successes / len(episodes) if episodes else 0.0,
        "intervention_steps": sum(e["intervention_steps"] for e in episodes),
        "tasks": _group_stats(episodes, "task"),
        "splits": _group_stats(episodes, "split"),
        "topics": {
            name: {
                "type": t["type"],
                "count": t["count"],
                "rate_hz": t["intervals"] / (t["span_ns"] * 1e-9) if t["span_ns"] > 0 else 0.0,
            }
            for name, t in sorted(topics.items())
        },
        "duration_s": sum(index["duration_s"] for index in indexes),
        "message_count": sum(index["message_count"] for index in indexes),
        "size_bytes": sum(index["size_bytes"] for index in indexes),
    }


def format_dataset_info(info: dict) -> str:
    """Human-readable rendering of `dataset_info`."""
    lines = [
        f"Dataset:      {info['path']}",
        f"Bags:         {len(info['bags'])}  ({info['size_bytes'] / 2**20:.1f} MiB, {info['duration_s']:.1f} s, "
        f"{info['message_count']} messages)",
        f"Episodes:     {info['episodes']} complete, {info['incomplete_episodes']} incomplete",
        f"Steps:        {info['steps']}  (intervention steps: {info['intervention_steps']})",
        f"Success rate: {info['success_rate']:.1%}  ({info['successes']}/{info['episodes']})",
    ]
    for title, key in (("Tasks", "tasks"), ("Splits", "splits")):
        lines.append(f"{title}:")
        for name, stats in info[key].items():
            rate = stats["successes"] / stats["episodes"] if stats["episodes"] else 0.0
            lines.append(
                f"  {name or '(none)':<24} {stats['episodes']:>6} episodes {stats['steps']:>8} steps "
                f"{rate:>7.1%} success"
            )
    lines.append("Topics:")
    width = max((len(name) for name in info["topics"]), default=0)
    for name, stats in info["topics"].items():
        lines.append(f"  {name:<{width}}  {stats['type']:<32} {stats['count']:>8} msgs {stats['rate_hz']:>8.2f} Hz")
    return "\n".join(lines)
