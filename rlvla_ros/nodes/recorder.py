"""recorder node: records topics to rosbag2 (MCAP) bags as raw CDR, without decoding, on the simulated or real arm.

Each recording session writes into a new folder ``<output_dir>/<YYYYmmdd-HHMMSS>`` (a suffix keeps it unique): one
bag ``rlvla_0000`` for the session, or, with ``episodes_per_bag`` N > 0, a new bag at the first ``episode_event``
START after every N episode ENDs (``rlvla_0000``, ``rlvla_0001``, ...). Requested topics are resolved in the node's
namespace and subscribed once their first publisher shows up (polled every ``discovery_period_s``), with the type
the graph reports and a QoS every publisher matches (best-effort if any publisher is best-effort; transient-local
if all are, to get latched data such as ``instruction``). Latched history published before the session started is
not this session's data: of it only the newest message per topic is recorded (the state at the start, such as the
current ``instruction``, stamped with the session's start), and none of ``episode_event`` (a bag's episodes are the
ones that happen while it records). Messages are stamped with their receive time and written
by a background thread; the bag is flushed to the OS every ``flush_interval_s``, so a hard kill loses at most that
much (``rlvla dataset recover`` restores the rest), and SIGINT/SIGTERM finish the bag cleanly.

Services: ``~/start_recording`` (rlvla_ros/srv/StartRecording; empty fields take the parameters),
``~/stop_recording`` (rlvla_ros/srv/StopRecording) and ``~/get_status`` (std_srvs/Trigger; the message is the
session's progress as JSON: bags, topics recorded, still pending (no publisher yet) and unmatched (a publisher the
subscription has not matched yet), ``ready`` when there are neither (the episode manager's ``wait_for_recorder``
waits for it), messages written, queued and dropped, per topic received / written / dropped (``per_topic``), and the
episode ENDs written, by which a client knows the bag holds an episode before it stops the recording). Refused
with ``success=false`` and a reason: starting while recording, an output folder that cannot be created or written,
an invalid topic name, ``episodes_per_bag`` without an ``episode_event`` topic, and stopping while not recording.
A session whose topics never got a publisher still ends in a valid bag with no messages: the start reply promised
that bag's path, and ``rlvla dataset info`` on it says "0 messages" instead of failing on an empty folder.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rclpy.node import Node
from rclpy.subscription import Subscription
from std_srvs.srv import Trigger

from rlvla_ros.ros.parameters import declare_config
from rlvla_ros.ros.spinning import run_node
from rlvla_ros.ros.recording import BagWriterThread, message_class, offered_qos, subscription_qos
from rlvla_ros.ros.stats import NodeStats, instrument_subscriptions
from rlvla_ros.srv import StartRecording, StopRecording

BAG_PREFIX = "rlvla"
EPISODE_EVENT_TOPIC = "episode_event"


@dataclass
class RecorderConfig:
    """Parameters of the recorder node."""

    output_dir: str = field(default="bags", metadata={
        "description": "folder under which each session's bags are written (created if missing)"})
    topics: list[str] = field(default_factory=lambda: [
        "observation", "executed_action", "reward", "episode_event", "instruction", "joint_states"], metadata={
        "description": "topics to record, resolved in the node's namespace"})
    autostart: bool = field(default=True, metadata={"description": "start recording at start-up"})
    episodes_per_bag: int = field(default=0, metadata={
        "description": "start a new bag every N episodes (needs episode_event recorded); 0: one bag per session"})
    flush_interval_s: float = field(default=1.0, metadata={
        "description": "hand written data to the OS at least this often (bounds the loss on a hard kill)"})
    queue_depth: int = field(default=100, metadata={
        "description": "subscription queue depth per topic (messages the executor may fall behind by)"})
    max_queued_messages: int = field(default=2000, metadata={
        "description": "messages waiting for the writer thread before new ones are dropped"})
    discovery_period_s: float = field(default=0.5, metadata={
        "description": "how often to look for publishers of topics not subscribed yet"})

    def __post_init__(self) -> None:
        if self.episodes_per_bag < 0:
            raise ValueError(f"episodes_per_bag must be >= 0, got {self.episodes_per_bag}")
        for name in ("flush_interval_s", "discovery_period_s"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        if self.queue_depth < 1 or self.max_queued_messages < 1:
            raise ValueError("queue_depth and max_queued_messages must be >= 1")


class Recorder(Node):
    """Topic recorder; see the module docstring."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__("recorder", **kwargs)
        self.config = declare_config(self, RecorderConfig)
        self._writer: BagWriterThread | None = None
        self._session_dir: Path | None = None
        self._pending: list[str] = []
        self._session_start_ns = 0
        self._history: dict[str, bytes] = {}
        """Per topic, the newest message published before the session (latched history), until it is written."""
        self._recorded_subscriptions: dict[str, Subscription] = {}
        self._reported_error = False
        self.dropped_total = 0
        """Messages the writer queue dropped, over all sessions."""
        self._stats = NodeStats(self)
        self.create_service(StartRecording, "~/start_recording", self._on_start)
        self.create_service(StopRecording, "~/stop_recording", self._on_stop)
        self.create_service(Trigger, "~/get_status", self._on_status)
        self.create_timer(self.config.discovery_period_s, self._discover)
        self.create_timer(self.config.flush_interval_s, self._flush)
        if self.config.autostart:
            ok, message = self.start(self.config.output_dir, self.config.topics, self.config.episodes_per_bag)
            if not ok:
                raise ValueError(f"cannot start recording: {message}")

    @property
    def recording(self) -> bool:
        """Whether a session is open."""
        return self._writer is not None

    def start(self, output_dir: str, topics: list[str], episodes_per_bag: int) -> tuple[bool, str]:
        """Open a recording session; (False, reason) if the request is invalid or a session is open."""
        if self._writer is not None:
            return False, f"already recording into {self._session_dir}; stop first"
        if not topics:
            return False, "no topics to record"
        try:
            resolved = list(dict.fromkeys(self.resolve_topic_name(t) for t in topics))
        except Exception as error:  # noqa: BLE001 - rclpy raises several types for invalid names
            return False, f"invalid topic name in {topics}: {error}"
        event_topic = self.resolve_topic_name(EPISODE_EVENT_TOPIC)
        if episodes_per_bag and event_topic not in resolved:
            return False, f"episodes_per_bag={episodes_per_bag} needs {event_topic} among the recorded topics"
        try:
            session_dir = _new_session_dir(Path(output_dir).expanduser())
        except OSError as error:
            return False, f"cannot write to output_dir '{output_dir}': {error}"
        self._session_dir = session_dir
        self._writer = BagWriterThread(session_dir, prefix=BAG_PREFIX, episodes_per_bag=episodes_per_bag,
                                       flush_interval_s=self.config.flush_interval_s,
                                       max_queued=self.config.max_queued_messages)
        self._pending = list(resolved)  # a copy: discovery empties it
        self._session_start_ns = time.time_ns()
        self._history = {}
        self._reported_error = False
        self._discover()
        self.get_logger().info(f"recording {resolved} into {session_dir}"
                               + (f", a new bag every {episodes_per_bag} episodes" if episodes_per_bag else ""))
        return True, f"recording {len(resolved)} topics into {session_dir}"

    def destroy_node(self) -> None:
        # Also after SIGINT/SIGTERM (the context is shut down by then): finish the bag so it opens as is.
        self.stop()
        super().destroy_node()

    def stop(self) -> tuple[list[str], int, int]:
        """Close the session: (bag paths, messages written, messages dropped). Idempotent."""
        writer = self._writer
        if writer is None:
            return [], 0, 0
        self._write_history()
        self._writer = None
        self._pending = []
        # Finish the bag first: on SIGINT/SIGTERM this runs after the context is shut down.
        writer.close()
        self.dropped_total += writer.dropped
        if writer.error is not None:
            self.get_logger().error(f"the bag writer failed: {writer.error!r}")
        for subscription in self._recorded_subscriptions.values():
            self.destroy_subscription(subscription)
        self._recorded_subscriptions.clear()
        paths = [str(p) for p in writer.writer.bag_paths]
        self.get_logger().info(f"recording stopped: {writer.writer.message_count} messages in {paths}, "
                               f"{writer.dropped} dropped")
        return paths, writer.writer.message_count, writer.dropped

    def status(self) -> dict:
        """Progress of the open session (``{"recording": false}`` when none is)."""
        writer = self._writer
        if writer is None:
            return {"recording": False}
        unmatched = self._unmatched_topics()
        return {"recording": True, "ready": not self._pending and not unmatched,
                "session_dir": str(self._session_dir),
                "bags": [str(p) for p in writer.writer.bag_paths], "topics": sorted(self._recorded_subscriptions),
                "pending_topics": sorted(self._pending), "unmatched_topics": unmatched,
                "messages": writer.writer.message_count,
                "queued": writer.queued, "dropped": writer.dropped, "per_topic": writer.topic_counts(),
                "episode_ends": writer.writer.episode_ends}

    def _unmatched_topics(self) -> list[str]:
        """Recorded topics whose subscription has not matched every publisher the graph lists for them yet."""
        return sorted(topic for topic, subscription in self._recorded_subscriptions.items()
                      if subscription.get_publisher_count() < len(self.get_publishers_info_by_topic(topic)))

    def _discover(self) -> None:
        """Subscribe every pending topic that has publishers now."""
        if self._writer is None:
            return
        for topic in list(self._pending):
            publishers = self.get_publishers_info_by_topic(topic)
            if not publishers:
                continue
            self._pending.remove(topic)
            types = sorted({p.topic_type for p in publishers})
            if len(types) > 1:
                self.get_logger().error(f"not recording {topic}: publishers disagree on its type {types}")
                continue
            profiles = [p.qos_profile for p in publishers]
            try:
                msg_class = message_class(types[0])
                self._writer.add_topic(topic, types[0], [offered_qos(p) for p in profiles])
            except (ValueError, RuntimeError) as error:
                self.get_logger().error(f"not recording {topic}: {error}")
                continue
            qos = subscription_qos(profiles, self.config.queue_depth)
            self._recorded_subscriptions[topic] = self.create_subscription(
                msg_class, topic, lambda data, info, topic=topic: self._on_message(topic, data, info), qos, raw=True)
            instrument_subscriptions(self)
            self.get_logger().info(f"recording {topic} ({types[0]}, {qos.reliability.name.lower()}, "
                                   f"{qos.durability.name.lower()})")

    def _on_message(self, topic: str, data: bytes, info: dict) -> None:
        if self._writer is None:
            return
        if info["source_timestamp"] < self._session_start_ns:  # history a transient-local publisher replays
            if topic != self.resolve_topic_name(EPISODE_EVENT_TOPIC):
                self._history[topic] = data
            return
        self._write_history()
        self._writer.write(topic, data, info["received_timestamp"])

    def _write_history(self) -> None:
        """Write the newest pre-session message of each topic, stamped with the session's start (before every
        message received in the session)."""
        history, self._history = self._history, {}
        for topic, data in history.items():
            self._writer.write(topic, data, self._session_start_ns)

    def _flush(self) -> None:
        if self._writer is None:
            return
        self._write_history()
        self._writer.flush()
        if self._writer.error is not None and not self._reported_error:
            self._reported_error = True
            self.get_logger().error(f"the bag writer failed, nothing more is recorded: {self._writer.error!r}")
        if self._writer.dropped:
            self.get_logger().warning(f"{self._writer.dropped} messages dropped so far (writer queue full)",
                                      throttle_duration_sec=5.0)

    def _on_start(self, request: StartRecording.Request, response: StartRecording.Response) -> StartRecording.Response:
        topics = list(request.topics) or self.config.topics
        output_dir = request.output_dir or self.config.output_dir
        response.success, response.message = self.start(output_dir, topics, request.episodes_per_bag)
        if response.success:
            # The session folder is new and empty, so the writer's first bag gets index 0.
            response.bag_path = str(self._session_dir / f"{BAG_PREFIX}_0000")
        return response

    def _on_stop(self, request: StopRecording.Request, response: StopRecording.Response) -> StopRecording.Response:
        if self._writer is None:
            response.success, response.message = False, "not recording"
            return response
        paths, count, dropped = self.stop()
        response.success = True
        response.bag_paths = paths
        response.message_count = count
        response.message = f"{count} messages in {len(paths)} bag(s), {dropped} dropped"
        return response

    def _on_status(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        response.success, response.message = True, json.dumps(self.status(), sort_keys=True)
        return response


def _new_session_dir(output_dir: Path) -> Path:
    """Create a fresh, writable `<output_dir>/<YYYYmmdd-HHMMSS>[-k]` folder; OSError if that is impossible."""
    output_dir.mkdir(parents=True, exist_ok=True)
    if not os.access(output_dir, os.W_OK | os.X_OK):
        raise PermissionError(f"{output_dir} is not writable")
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for k in range(1000):
        candidate = output_dir / (stamp if k == 0 else f"{stamp}-{k}")
        try:
            candidate.mkdir()
            return candidate
        except FileExistsError:
            continue
    raise FileExistsError(f"no free session folder name in {output_dir}")


def main(args: list[str] | None = None) -> int:
    return run_node(Recorder, args)
