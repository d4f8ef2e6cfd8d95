"""rosbag2 MCAP writer for already-serialised CDR messages, with episode-based splitting and bounded crash loss."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Sequence

from rosbags.interfaces import Connection, Qos, QosDurability, QosHistory, QosLiveliness, QosReliability, QosTime
from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.rosbag2.enums import CompressionFormat, CompressionMode
from rosbags.rosbag2.storage_mcap import McapWriter
from rosbags.typesys.store import Typestore

from rlvla_ros.data.typestore import EPISODE_EVENT, make_typestore

_ROSBAG2_VERSION = 9
TOPIC_COUNTS_KEY = "rlvla.topic_counts"
"""metadata.yaml custom_data key: JSON ``{topic: {"received", "written", "dropped"}}`` of the bag's recording."""


def make_qos(*, depth: int = 10, reliable: bool = True, transient_local: bool = False) -> Qos:
    """Offered QoS profile to record in the bag metadata (what `ros2 bag play` will offer on replay)."""
    zero = QosTime(0, 0)
    return Qos(
        history=QosHistory.KEEP_LAST,
        depth=depth,
        reliability=QosReliability.RELIABLE if reliable else QosReliability.BEST_EFFORT,
        durability=QosDurability.TRANSIENT_LOCAL if transient_local else QosDurability.VOLATILE,
        deadline=zero,
        lifespan=zero,
        liveliness=QosLiveliness.AUTOMATIC,
        liveliness_lease_duration=zero,
        avoid_ros_namespace_conventions=False,
    )


@dataclass(frozen=True)
class TopicSpec:
    """A recorded topic."""

    topic: str
    """Fully qualified topic name."""
    msgtype: str
    """ROS 2 type name, e.g. `sensor_msgs/msg/Image`."""
    qos: tuple[Qos, ...] = ()
    """Offered QoS profiles of the publishers, stored in the bag metadata."""


class BagWriter:
    """Writes CDR-serialised messages into rosbag2 bags (MCAP storage) in `root`, one bag directory per split.

    Bags are named `<prefix>_<index:04d>` with the first free index, so a restarted recorder never overwrites.
    Messages are buffered in MCAP chunks of at most 1 MiB (rosbags' chunk size); `flush()` (also run automatically
    every `flush_interval_s` on write) closes the pending chunk and hands it to the OS, so a hard kill loses at most
    the last ~`flush_interval_s` or 1 MiB of data, which `recover_bag` restores up to. A clean `close()` writes the
    MCAP summary and `metadata.yaml`; without them the bag must be recovered.

    Each bag's metadata.yaml carries, under custom_data ``TOPIC_COUNTS_KEY``, per topic the messages written to it
    and those the recorder had to drop while it was open (``note_dropped``), so a loss shows in the bag itself.

    The writer decodes the (tiny) `rlvla_ros/msg/EpisodeEvent` messages it is given and counts their ENDs in
    `episode_ends`. With `episodes_per_bag > 0` it starts a new bag at the first START after `episodes_per_bag` END
    events, so late messages of the last episode still land in the same bag as the rest of it.
    """

    def __init__(
        self,
        root: Path | str,
        *,
        prefix: str = "rlvla",
        episodes_per_bag: int = 0,
        flush_interval_s: float = 1.0,
        compress: bool = False,
        typestore: Typestore | None = None,
    ) -> None:
        if episodes_per_bag < 0:
            raise ValueError(f"episodes_per_bag must be >= 0, got {episodes_per_bag}")
        if flush_interval_s <= 0:
            raise ValueError(f"flush_interval_s must be > 0, got {flush_interval_s}")
        if not prefix or "/" in prefix:
            raise ValueError(f"prefix must be a non-empty name without '/', got {prefix!r}")
        self.root = Path(root)
        self.prefix = prefix
        self.episodes_per_bag = episodes_per_bag
        self.flush_interval_s = flush_interval_s
        self.compress = compress
        self.typestore = typestore if typestore is not None else make_typestore()
        self._topics: dict[str, TopicSpec] = {}
        self._writer: Writer | None = None
        self._connections: dict[str, Connection] = {}
        self._closed_paths: list[Path] = []
        self._ends_in_bag = 0
        self._bag_written: dict[str, int] = {}
        self._bag_dropped: dict[str, int] = {}
        self._last_flush_s = time.monotonic()
        self.message_count = 0
        """Messages written over all bags."""
        self.topic_counts: dict[str, int] = {}
        """Messages written per topic over all bags."""
        self.episode_ends = 0
        """Episode END events written over all bags."""

    @property
    def current_path(self) -> Path | None:
        """Directory of the bag being written, or None between bags."""
        return self._writer.path if self._writer is not None else None

    @property
    def bag_paths(self) -> list[Path]:
        """Every bag directory this writer created, oldest first (including the open one)."""
        current = [self._writer.path] if self._writer is not None else []
        return [*self._closed_paths, *current]

    def add_topic(self, topic: str, msgtype: str, qos: Sequence[Qos] = ()) -> None:
        """Register a topic; adding the same topic again with the same type is a no-op."""
        spec = TopicSpec(topic, msgtype, tuple(qos))
        known = self._topics.get(topic)
        if known is not None:
            if known.msgtype != msgtype:
                raise ValueError(f"topic {topic} already recorded as {known.msgtype}, not {msgtype}")
            return
        if msgtype not in self.typestore.fielddefs:
            raise ValueError(f"unknown message type {msgtype!r} for topic {topic}")
        self._topics[topic] = spec
        if self._writer is not None:
            self._add_connection(spec)

    def write(self, topic: str, data: bytes | memoryview, timestamp_ns: int) -> None:
        """Write one CDR-serialised message received at `timestamp_ns` (ns since the epoch)."""
        spec = self._topics.get(topic)
        if spec is None:
            raise ValueError(f"topic {topic} was not added; call add_topic first")
        if spec.msgtype == EPISODE_EVENT:
            self._count_episode_event(data)
        if self._writer is None:
            self._open()
        assert self._writer is not None
        self._writer.write(self._connections[topic], timestamp_ns, data)
        self.message_count += 1
        self.topic_counts[topic] = self.topic_counts.get(topic, 0) + 1
        self._bag_written[topic] = self._bag_written.get(topic, 0) + 1

    def note_dropped(self, topic: str) -> None:
        """Count a message of ``topic`` that was received but could not be written (into the bag's metadata)."""
        self._bag_dropped[topic] = self._bag_dropped.get(topic, 0) + 1
        if time.monotonic() - self._last_flush_s >= self.flush_interval_s:
            self.flush()

    def flush(self) -> None:
        """Close the pending MCAP chunk and hand everything written so far to the OS."""
        self._last_flush_s = time.monotonic()
        if self._writer is None:
            return
        storage = self._writer.storage
        # rosbags exposes no flush; its MCAP storage only writes a chunk once it exceeds 1 MiB.
        if not isinstance(storage, McapWriter):
            raise TypeError(f"expected rosbags' MCAP storage, got {type(storage).__name__}")
        if storage.chunk.msgs:  # a chunk without messages would carry an empty (inverted) time range
            storage.close_chunk()
        storage.bio.flush()

    def split(self) -> Path | None:
        """Close the current bag now; the next write starts a new one. Returns the closed bag, if any."""
        if self._writer is None:
            return None
        path = self._writer.path
        written, dropped = self._bag_written, self._bag_dropped
        self._bag_written, self._bag_dropped = {}, {}
        self._writer.set_custom_data(TOPIC_COUNTS_KEY, json.dumps({
            topic: {"received": written.get(topic, 0) + dropped.get(topic, 0), "written": written.get(topic, 0),
                    "dropped": dropped.get(topic, 0)}
            for topic in sorted({*self._topics, *written, *dropped})}, sort_keys=True))
        # Writer.close writes the MCAP summary, then metadata.yaml atomically (tmp file + rename).
        self._writer.close()
        self._writer = None
        self._connections = {}
        self._closed_paths.append(path)
        self._ends_in_bag = 0
        return path

    def close(self) -> None:
        """Finish the current bag (summary + metadata.yaml). Safe to call more than once."""
        self.split()

    def start_bag(self) -> None:
        """Open a bag now if none is open (with the topics added so far), rather than at the next write."""
        if self._writer is None:
            self._open()

    def __enter__(self) -> BagWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        # Unlike rosbags' Writer, finish the bag on exceptions too (e.g. KeyboardInterrupt): what was written
        # before is valid data.
        self.close()

    def _count_episode_event(self, data: bytes | memoryview) -> None:
        event = self.typestore.deserialize_cdr(bytes(data), EPISODE_EVENT)
        if event.event == event.START and self.episodes_per_bag and self._ends_in_bag >= self.episodes_per_bag:
            self.split()
        elif event.event == event.END:
            self._ends_in_bag += 1
            self.episode_ends += 1

    def _open(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        index = 0
        while (self.root / f"{self.prefix}_{index:04d}").exists():
            index += 1
        path = self.root / f"{self.prefix}_{index:04d}"
        writer = Writer(path, version=_ROSBAG2_VERSION, storage_plugin=StoragePlugin.MCAP)
        if self.compress:
            writer.set_compression(CompressionMode.STORAGE, CompressionFormat.ZSTD)
        writer.open()
        self._writer = writer
        for spec in self._topics.values():
            self._add_connection(spec)

    def _add_connection(self, spec: TopicSpec) -> None:
        assert self._writer is not None
        self._connections[spec.topic] = self._writer.add_connection(
            spec.topic, spec.msgtype, typestore=self.typestore, offered_qos_profiles=list(spec.qos)
        )
