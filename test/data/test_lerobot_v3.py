"""LeRobotDataset v3.0 export and import: the published layout field by field, exact round trips, BC from an export,
clear errors for bad input."""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from rlvla_ros.data import (
    EpisodeRecord,
    OfflineDataset,
    check_dataset,
    dataset_episodes,
    episodes_from_bag,
    episodes_from_lerobot,
    export_lerobot,
    find_bags,
)
from rlvla_ros.data.video import read_video

from .conftest import PROPRIO_NAMES, make_episode

KEY = "observation.images.front"

# LeRobot v3.0 as published (huggingface/lerobot docs/source/lerobot-dataset-v3.mdx, src/lerobot/datasets/utils.py).
SPEC_INFO_KEYS = {
    "codebase_version", "robot_type", "total_episodes", "total_frames", "total_tasks", "chunks_size",
    "data_files_size_in_mb", "video_files_size_in_mb", "fps", "splits", "data_path", "video_path", "features",
}
SPEC_DATA_PATH = "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
SPEC_VIDEO_PATH = "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"
SPEC_DEFAULT_FEATURES = {
    "timestamp": "float32", "frame_index": "int64", "episode_index": "int64", "index": "int64", "task_index": "int64",
}
SPEC_EPISODE_COLUMNS = {
    "episode_index", "tasks", "length", "data/chunk_index", "data/file_index", "dataset_from_index",
    "dataset_to_index", "meta/episodes/chunk_index", "meta/episodes/file_index",
}
SPEC_VIDEO_EPISODE_COLUMNS = ("chunk_index", "file_index", "from_timestamp", "to_timestamp")
SPEC_VIDEO_INFO_KEYS = {
    "video.height", "video.width", "video.codec", "video.pix_fmt", "video.is_depth_map", "video.fps",
    "video.channels", "has_audio",
}
SPEC_STATS = {"min", "max", "mean", "std", "count"}


def _files(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


def _assert_same_episodes(actual: list[EpisodeRecord], expected: list[EpisodeRecord]) -> None:
    assert len(actual) == len(expected)
    for got, want in zip(actual, expected):
        for field in dataclasses.fields(EpisodeRecord):
            a, b = getattr(got, field.name), getattr(want, field.name)
            if isinstance(b, np.ndarray):
                assert a.dtype == b.dtype and a.shape == b.shape, field.name
                np.testing.assert_array_equal(a, b, err_msg=field.name)
            else:
                assert a == b, field.name


@pytest.fixture
def exported(record_bags, episodes, tmp_path) -> tuple[Path, Path]:
    """The four test episodes in two bags, exported to `lerobot/` at 10 fps."""
    bags = record_bags(episodes, episodes_per_bag=2)
    root = tmp_path / "lerobot"
    export_lerobot([bags[0].parent], root, fps=10)
    return bags[0].parent, root


def test_export_follows_the_v3_layout_field_by_field(exported, episodes):
    _, root = exported
    info = json.loads((root / "meta/info.json").read_text())
    assert set(info) == SPEC_INFO_KEYS
    assert info["codebase_version"] == "v3.0"
    assert (info["total_episodes"], info["total_frames"], info["total_tasks"]) == (4, 22, 2)
    assert (info["chunks_size"], info["data_files_size_in_mb"], info["video_files_size_in_mb"]) == (1000, 100, 500)
    assert info["fps"] == 10 and info["splits"] == {"train": "0:4"}
    assert (info["data_path"], info["video_path"]) == (SPEC_DATA_PATH, SPEC_VIDEO_PATH)
    features = info["features"]
    for name, feature in features.items():
        assert "/" not in name
        assert {"dtype", "shape", "names"} <= set(feature), name
    for name, dtype in SPEC_DEFAULT_FEATURES.items():
        assert features[name] == {"dtype": dtype, "shape": [1], "names": None}
    assert features[KEY]["dtype"] == "video" and features[KEY]["shape"] == [16, 16, 3]
    assert features[KEY]["names"] == ["height", "width", "channels"]
    assert set(features[KEY]["info"]) == SPEC_VIDEO_INFO_KEYS
    assert features[KEY]["info"]["video.codec"] == "h264" and features[KEY]["info"]["video.fps"] == 10
    assert features["observation.state"] == {"dtype": "float32", "shape": [8], "names": list(PROPRIO_NAMES)}
    assert features["action"] == {"dtype": "float32", "shape": [5], "names": ["dx", "dy", "dz", "dyaw", "gripper"]}
    for name, dtype in (("next.reward", "float32"), ("next.done", "bool"), ("next.success", "bool"),
                        ("intervention", "bool"), ("log_prob", "float32")):
        assert features[name] == {"dtype": dtype, "shape": [1], "names": None}

    assert _files(root) == [
        "data/chunk-000/file-000.parquet", "meta/episodes/chunk-000/file-000.parquet", "meta/info.json",
        "meta/stats.json", "meta/tasks.parquet", f"videos/{KEY}/chunk-000/file-000.mp4",
    ]
    data = pq.read_table(root / "data/chunk-000/file-000.parquet")
    assert set(data.column_names) == {name for name, f in features.items() if f["dtype"] != "video"}
    frames = data.to_pydict()
    assert frames["index"] == list(range(22))
    assert frames["episode_index"] == [0] * 4 + [1] * 5 + [2] * 6 + [3] * 7
    assert frames["frame_index"] == [*range(4), *range(5), *range(6), *range(7)]
    np.testing.assert_allclose(frames["timestamp"], np.array(frames["frame_index"]) / 10, rtol=1e-6)
    assert frames["task_index"] == [0] * 9 + [1] * 13
    assert frames["next.done"] == [i == n - 1 for n in (4, 5, 6, 7) for i in range(n)]
    assert frames["next.success"] == [bool(s) for e in episodes for s in e.successes]
    assert frames["intervention"] == [bool(s) for e in episodes for s in e.interventions]
    assert data.schema.field("action").type == pa.list_(pa.float32(), 5)

    tasks = pq.read_table(root / "meta/tasks.parquet")
    assert tasks.to_pydict() == {"task_index": [0, 1], "task": ["lift the red cube", "stack the red cube"]}
    assert json.loads(tasks.schema.metadata[b"pandas"])["index_columns"] == ["task"]

    rows = pq.read_table(root / "meta/episodes/chunk-000/file-000.parquet").to_pylist()
    video_columns = {f"videos/{KEY}/{column}" for column in SPEC_VIDEO_EPISODE_COLUMNS}
    assert SPEC_EPISODE_COLUMNS | video_columns <= set(rows[0])
    assert [r["length"] for r in rows] == [4, 5, 6, 7]
    assert [(r["dataset_from_index"], r["dataset_to_index"]) for r in rows] == [(0, 4), (4, 9), (9, 15), (15, 22)]
    assert [r[f"videos/{KEY}/from_timestamp"] for r in rows] == [0.0, 0.4, 0.9, 1.5]
    assert [r[f"videos/{KEY}/to_timestamp"] for r in rows] == [0.4, 0.9, 1.5, 2.2]
    assert [r["tasks"] for r in rows] == [[e.instruction] for e in episodes]
    assert [r["episode_return"] for r in rows] == pytest.approx([e.episode_return for e in episodes])
    assert [r["intervention_steps"] for r in rows] == [e.intervention_steps for e in episodes]
    assert [(r["episode_id"], r["task_name"], r["split"], r["seed"], r["success"]) for r in rows] == [
        (e.episode_id, e.task, e.split, e.seed, e.success) for e in episodes
    ]
    assert rows[0]["stats/action/count"] == [4]

    stats = json.loads((root / "meta/stats.json").read_text())
    assert {name for name, f in features.items()} == set(stats)
    for name, entry in stats.items():
        assert set(entry) == SPEC_STATS, name
        assert entry["count"] == [22], name
    assert np.array(stats[KEY]["mean"]).shape == (3, 1, 1)
    all_actions = np.concatenate([e.actions for e in episodes])
    np.testing.assert_allclose(stats["action"]["mean"], all_actions.mean(axis=0), rtol=1e-5)
    np.testing.assert_allclose(stats["action"]["std"], all_actions.std(axis=0), rtol=1e-4)
    assert read_video(root / f"videos/{KEY}/chunk-000/file-000.mp4").shape == (22, 16, 16, 3)


def test_round_trip_gives_the_episodes_read_from_the_bags(exported):
    bags, root = exported
    from_bags = [e for bag in find_bags(bags) for e in episodes_from_bag(bag)]
    _assert_same_episodes(episodes_from_lerobot(root), from_bags)
    _assert_same_episodes(dataset_episodes(root), from_bags)
    check_dataset(root)


def test_episodes_spread_over_many_data_and_video_files_read_back_the_same(record_bags, episodes, tmp_path):
    bags = record_bags(episodes)
    root = tmp_path / "sharded"
    export_lerobot(bags, root, data_file_size_mb=0, video_file_size_mb=0)  # 0: a new file after every episode
    files = _files(root)
    assert [f for f in files if f.startswith("data/")] == [f"data/chunk-000/file-{i:03d}.parquet" for i in range(4)]
    assert [f for f in files if f.startswith("videos/")] == [
        f"videos/{KEY}/chunk-000/file-{i:03d}.mp4" for i in range(4)
    ]
    rows = pq.read_table(root / "meta/episodes/chunk-000/file-000.parquet").to_pylist()
    assert [r[f"videos/{KEY}/from_timestamp"] for r in rows] == [0.0] * 4
    _assert_same_episodes(episodes_from_lerobot(root), [e for b in bags for e in episodes_from_bag(b)])


def test_offline_dataset_from_an_export_equals_the_one_from_the_bags(exported):
    bags, root = exported
    from_bags = OfflineDataset.from_path(bags, horizon=3, gamma=0.9, splits=["id"])
    from_export = OfflineDataset.from_path(root, horizon=3, gamma=0.9, splits=["id"])
    assert len(from_export) == len(from_bags) == 15
    a, b = from_export.get_batch(np.arange(15)), from_bags.get_batch(np.arange(15))
    for key in b:
        np.testing.assert_array_equal(np.asarray(a[key]), np.asarray(b[key]), err_msg=key)


def test_lossy_av1_export_keeps_every_column_exact_and_images_above_30_db(record_bags, tmp_path):
    """AV1 in yuv420p is lossy: the round trip compares images by PSNR, everything else exactly."""
    smooth = []
    for index, length in enumerate((6, 5)):
        episode = make_episode(index, length, success=True)
        y, x = np.mgrid[0:16, 0:16]
        episode.images = np.stack([
            np.stack([x * 6 + 4 * t, y * 7 + 20, np.full_like(x, 90 + 10 * index)], axis=-1).astype(np.uint8)
            for t in range(length)
        ])
        smooth.append(episode)
    bags = record_bags(smooth)
    root = tmp_path / "av1"
    info = export_lerobot(bags, root, codec="av1")
    assert info["features"][KEY]["info"]["video.codec"] == "av1"
    assert info["features"][KEY]["info"]["video.pix_fmt"] == "yuv420p"
    back, want = episodes_from_lerobot(root), [e for b in bags for e in episodes_from_bag(b)]
    for got, expected in zip(back, want):
        error = (got.images.astype(np.float64) - expected.images) ** 2
        assert 10 * np.log10(255**2 / error.mean()) > 30.0
        got.images = expected.images
    _assert_same_episodes(back, want)


def test_bc_from_an_export_gives_the_same_policy_as_bc_from_the_bags(record_bags, episodes, tmp_path):
    import torch

    from rlvla_ros.policies import load_policy
    from rlvla_ros.training.jobs import JobRequest, prepare_job, run_job

    bags = record_bags(episodes)[0].parent
    root = tmp_path / "lerobot"
    export_lerobot([bags], root)
    overrides = "{image_size: 32, batch_size: 8, log_interval: 2, checkpoint_interval: 4, val_fraction: 0.25}"
    weights = []
    for name, dataset in (("bags", bags), ("export", root)):
        torch.manual_seed(0)
        trainer, context = prepare_job(JobRequest("bc", [str(dataset)], 4, overrides), tmp_path / name)
        run_job(trainer, context)
        policy = load_policy(tmp_path / name / "latest")
        assert policy.config.proprio_dim == len(PROPRIO_NAMES)  # a fresh policy takes the data's proprioception
        weights.append(policy.state_dict())
    assert weights[0].keys() == weights[1].keys()
    for key in weights[0]:
        assert torch.equal(weights[0][key], weights[1][key]), key


def test_missing_dirs_other_versions_and_corrupt_files_raise_clear_errors(exported, tmp_path):
    _, root = exported
    with pytest.raises(ValueError, match="does not exist"):
        episodes_from_lerobot(tmp_path / "nowhere")
    with pytest.raises(ValueError, match="not a LeRobot dataset"):
        episodes_from_lerobot(tmp_path)

    old = tmp_path / "old"
    shutil.copytree(root, old)
    info = json.loads((old / "meta/info.json").read_text())
    (old / "meta/info.json").write_text(json.dumps({**info, "codebase_version": "v2.1"}))
    with pytest.raises(ValueError, match=r"codebase_version 'v2.1'; only v3.0"):
        check_dataset(old)

    foreign = tmp_path / "foreign"
    shutil.copytree(root, foreign)
    del info["features"]["next.reward"]
    (foreign / "meta/info.json").write_text(json.dumps(info))
    with pytest.raises(ValueError, match=r"without the features \['next.reward'\]"):
        episodes_from_lerobot(foreign)

    corrupt = tmp_path / "corrupt"
    shutil.copytree(root, corrupt)
    (corrupt / "data/chunk-000/file-000.parquet").write_bytes(b"not a parquet file")
    with pytest.raises(ValueError, match=re.escape(f"cannot read {corrupt / 'data/chunk-000/file-000.parquet'}")):
        episodes_from_lerobot(corrupt)

    no_video = tmp_path / "no_video"
    shutil.copytree(root, no_video)
    (no_video / f"videos/{KEY}/chunk-000/file-000.mp4").write_bytes(b"\x00" * 64)
    with pytest.raises(ValueError, match="cannot decode video"):
        episodes_from_lerobot(no_video)
    with pytest.raises(ValueError, match=r"camera 'wrist' not in the dataset's cameras \['front'\]"):
        episodes_from_lerobot(root, camera="wrist")


def test_export_refuses_an_existing_dataset_and_leaves_nothing_when_it_fails(record_bags, episodes, tmp_path):
    bags = record_bags(episodes[:1])
    target = tmp_path / "out"
    target.mkdir()
    (target / "keep.txt").write_text("mine")
    with pytest.raises(ValueError, match="already exists and is not an empty directory"):
        export_lerobot(bags, target)
    assert _files(target) == ["keep.txt"]
    odd = record_bags([dataclasses.replace(make_episode(9, 3, success=True),
                                           images=np.zeros((3, 15, 15, 3), np.uint8))])
    with pytest.raises(ValueError, match="needs even image sizes"):
        export_lerobot(odd, tmp_path / "odd", codec="av1")
    assert not (tmp_path / "odd").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".odd.")]
    with pytest.raises(ValueError, match="does not exist"):
        export_lerobot([tmp_path / "no_bags"], tmp_path / "x")


def test_cli_export_lerobot_writes_the_dataset_and_reports_bad_input(record_bags, episodes, tmp_path, capsys):
    from rlvla_ros.cli import main

    bags = record_bags(episodes)
    assert main(["dataset", "export-lerobot", str(bags[0]), str(tmp_path / "cli")]) == 0
    assert "wrote 4 episodes, 22 frames, 2 tasks, cameras observation.images.front" in capsys.readouterr().out
    assert json.loads((tmp_path / "cli/meta/info.json").read_text())["total_frames"] == 22
    assert main(["dataset", "export-lerobot", str(tmp_path / "none"), str(tmp_path / "cli2")]) == 1
    assert "rlvla dataset export-lerobot:" in capsys.readouterr().out
