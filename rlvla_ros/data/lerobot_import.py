"""Read a LeRobotDataset v3.0 directory with the RL columns (as `export_lerobot` writes it) back into episodes."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from rlvla_ros.contract import ACTION_DIM
from rlvla_ros.data import lerobot_format as fmt
from rlvla_ros.data.episodes import EpisodeRecord
from rlvla_ros.data.video import read_video


def _read_parquet(path: Path, columns: Iterable[str] | None = None) -> pa.Table:
    try:
        return pq.read_table(path, columns=list(columns) if columns is not None else None)
    except FileNotFoundError:
        raise ValueError(f"missing file {path}") from None
    except (pa.ArrowException, OSError) as err:
        raise ValueError(f"cannot read {path}: {err}") from err


def _check_features(root: Path, features: dict[str, dict]) -> list[str]:
    """Camera names of the dataset, after checking it has the features the episodes need."""
    missing = [name for name in (*fmt.REQUIRED_FEATURES, *fmt.INDEX_FEATURES) if name not in features]
    if missing:
        raise ValueError(f"{root}: LeRobot dataset without the features {missing} (rlvla_ros trains from datasets "
                         "with the RL columns `rlvla dataset export-lerobot` writes)")
    if list(features[fmt.ACTION]["shape"]) != [ACTION_DIM]:
        raise ValueError(f"{root}: action shape {features[fmt.ACTION]['shape']}, expected [{ACTION_DIM}] (ee_delta)")
    cameras = [name.removeprefix(fmt.IMAGE_PREFIX) for name, feature in features.items()
               if feature["dtype"] == "video" and name.startswith(fmt.IMAGE_PREFIX)]
    if not cameras:
        raise ValueError(f"{root}: LeRobot dataset without a video feature {fmt.IMAGE_PREFIX}<camera>")
    return cameras


def _matrix(table: pa.Table, name: str) -> np.ndarray:
    column = table.column(name).combine_chunks()
    return column.flatten().to_numpy(zero_copy_only=False).reshape(len(column), -1)


def episodes_from_lerobot(path: Path | str, *, camera: str | None = None) -> list[EpisodeRecord]:
    """The episodes of a LeRobot v3.0 dataset in episode_index order (exports hold complete episodes only);
    `camera` picks the image stream (default: the first). ValueError naming the file for a missing or malformed
    part."""
    root = Path(path)
    info = fmt.load_info(root)
    cameras = _check_features(root, info["features"])
    if camera is None:
        camera = cameras[0]
    elif camera not in cameras:
        raise ValueError(f"{root}: camera {camera!r} not in the dataset's cameras {cameras}")
    key = fmt.image_key(camera)
    fps = info.get("fps")
    if not isinstance(fps, (int, float)) or fps <= 0:
        raise ValueError(f"{root / fmt.INFO_PATH}: fps must be a positive number, got {fps!r}")
    episode_files = sorted((root / "meta" / "episodes").glob("chunk-*/file-*.parquet"))
    if not episode_files:
        raise ValueError(f"{root}: no meta/episodes/chunk-XXX/file-YYY.parquet")
    rows = sorted((row for f in episode_files for row in _read_parquet(f).to_pylist()),
                  key=lambda row: row["episode_index"])
    state_names = tuple(info["features"][fmt.STATE]["names"] or ())
    data_cache: dict[str, pa.Table] = {}
    video_cache: dict[str, np.ndarray] = {}
    episodes = []
    for row in rows:
        try:
            data_file = fmt.file_path(info.get("data_path", fmt.DATA_PATH), row["data/chunk_index"],
                                      row["data/file_index"])
            video_file = fmt.file_path(info.get("video_path", fmt.VIDEO_PATH), row[f"videos/{key}/chunk_index"],
                                       row[f"videos/{key}/file_index"], video_key=key)
            first_frame = round(row[f"videos/{key}/from_timestamp"] * fps)
            index, length, instruction = row["episode_index"], row["length"], row["tasks"][0]
        except (KeyError, IndexError, TypeError) as err:
            raise ValueError(f"{root}: episode row {row.get('episode_index')} lacks {err}") from None
        if data_file not in data_cache:
            data_cache[data_file] = _read_parquet(root / data_file)
        table = data_cache[data_file]
        try:
            frames = table.filter(pc.equal(table.column("episode_index"), index))
            frames = frames.sort_by("frame_index")
        except (KeyError, pa.ArrowException) as err:
            raise ValueError(f"{root / data_file}: {err}") from err
        if frames.num_rows != length:
            raise ValueError(f"{root / data_file}: episode {index} has {frames.num_rows} frames, meta says {length}")
        if video_file not in video_cache:
            video_cache[video_file] = read_video(root / video_file)
        images = video_cache[video_file][first_frame : first_frame + length]
        if len(images) != length:
            raise ValueError(f"{root / video_file}: episode {index} needs frames {first_frame}..{first_frame + length}"
                             f" of {len(video_cache[video_file])}")
        log_probs = frames.column(fmt.LOG_PROB).to_numpy()
        episodes.append(EpisodeRecord(
            episode_id=row.get("episode_id") or f"episode_{index:06d}",
            instruction=instruction,
            images=images,
            proprio=_matrix(frames, fmt.STATE),
            actions=_matrix(frames, fmt.ACTION),
            rewards=frames.column(fmt.REWARD).to_numpy(),
            successes=frames.column(fmt.SUCCESS).to_numpy(zero_copy_only=False),
            interventions=frames.column(fmt.INTERVENTION).to_numpy(zero_copy_only=False),
            log_probs=None if np.isnan(log_probs).all() else log_probs,
            task=row.get("task_name", ""),
            split=row.get("split", "id"),
            seed=row.get("seed", 0),
            success=row.get("success"),
            termination_reason=row.get("termination_reason", ""),
            proprio_names=state_names,
        ))
    return episodes
