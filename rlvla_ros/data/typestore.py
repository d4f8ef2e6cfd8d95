"""rosbags typestore for ROS 2 with the rlvla_ros message types registered from their .msg files."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from rosbags.typesys import Stores, get_types_from_msg, get_typestore
from rosbags.typesys.store import Typestore

PACKAGE = "rlvla_ros"
OBSERVATION = f"{PACKAGE}/msg/Observation"
ACTION_CHUNK = f"{PACKAGE}/msg/ActionChunk"
REWARD = f"{PACKAGE}/msg/Reward"
EPISODE_EVENT = f"{PACKAGE}/msg/EpisodeEvent"
FINE_TUNE_STATUS = f"{PACKAGE}/msg/FineTuneStatus"
METRIC = f"{PACKAGE}/msg/Metric"

# Newest ROS 2 distro first; the first one this rosbags version knows is used.
_STORE_PREFERENCE = ("ROS2_KILTED", "ROS2_JAZZY", "ROS2_HUMBLE")


def find_msg_dir() -> Path:
    """Directory holding rlvla_ros' .msg files: the installed share dir if ament knows it, else the source tree."""
    try:
        from ament_index_python.packages import get_package_share_directory

        installed = Path(get_package_share_directory(PACKAGE)) / "msg"
    except (ImportError, LookupError, OSError):  # not installed, or no AMENT_PREFIX_PATH in this environment
        installed = None
    if installed is not None and any(installed.glob("*.msg")):
        return installed
    source = Path(__file__).resolve().parents[2] / "msg"
    if any(source.glob("*.msg")):
        return source
    raise FileNotFoundError(
        f"no {PACKAGE} .msg files found: looked in the ament share dir and in {source}"
    )


def _base_store() -> Stores:
    for name in _STORE_PREFERENCE:
        if hasattr(Stores, name):
            return getattr(Stores, name)
    return Stores.LATEST


@lru_cache(maxsize=1)
def _cached_typestore(msg_dir: Path) -> Typestore:
    store = get_typestore(_base_store())
    types = {}
    for path in sorted(msg_dir.glob("*.msg")):
        types.update(get_types_from_msg(path.read_text(encoding="utf-8"), f"{PACKAGE}/msg/{path.stem}"))
    store.register(types)
    return store


def make_typestore(msg_dir: Path | str | None = None) -> Typestore:
    """Typestore for ROS 2 (Kilted if available) plus every rlvla_ros/msg type found in `msg_dir`.

    The store is cached per directory; treat it as read-only.
    """
    return _cached_typestore(Path(msg_dir).resolve() if msg_dir is not None else find_msg_dir())
