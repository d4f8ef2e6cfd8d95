"""Recover a rosbag2 MCAP bag whose writer died before closing it (like `ros2 bag reindex`, but also rebuilding
the MCAP summary)."""

from __future__ import annotations

import struct
import tempfile
from pathlib import Path

from mcap.exceptions import McapError
from mcap.records import Channel, Message, Schema
from mcap.stream_reader import StreamReader
from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.rosbag2.metadata import parse_qos
from rosbags.typesys import Stores, get_types_from_msg, get_typestore

_METADATA = "metadata.yaml"


def bag_needs_recovery(path: Path | str) -> bool:
    """True for a bag directory with MCAP data but no metadata.yaml (its writer never closed it)."""
    path = Path(path)
    return path.is_dir() and not (path / _METADATA).exists() and any(path.glob("*.mcap"))


def _read_complete_records(mcap_path: Path) -> tuple[dict[int, Schema], dict[int, Channel], list[Message], bool]:
    """Schemas, channels and messages of every complete record; the flag says whether the file ended cleanly."""
    schemas: dict[int, Schema] = {}
    channels: dict[int, Channel] = {}
    messages: list[Message] = []
    with mcap_path.open("rb") as stream:
        try:
            # The stream reader needs no summary and yields a chunk's records only once the whole chunk was read.
            for record in StreamReader(stream, record_size_limit=None).records:
                if isinstance(record, Schema):
                    schemas[record.id] = record
                elif isinstance(record, Channel):
                    channels[record.id] = record
                elif isinstance(record, Message):
                    messages.append(record)
        except (McapError, struct.error, ValueError, EOFError):
            return schemas, channels, messages, False
    return schemas, channels, messages, True


def recover_bag(path: Path | str) -> dict:
    """Rebuild a valid MCAP file and metadata.yaml for an unfinished bag from its complete chunks.

    A bag that already has metadata.yaml is left alone. Otherwise every message of a fully written MCAP chunk is
    kept (a chunk cut off by the crash is lost), rewritten with a summary into a new file that atomically replaces
    the original, and metadata.yaml is written. Returns `{"path", "recovered", "messages", "topics", "truncated"}`
    where `topics` maps topic name to recovered message count.
    """
    path = Path(path)
    if not path.is_dir():
        raise ValueError(f"{path} is not a bag directory")
    if (path / _METADATA).exists():
        return {"path": str(path), "recovered": False, "messages": None, "topics": {}, "truncated": False}
    mcaps = sorted(path.glob("*.mcap"))
    if len(mcaps) != 1:
        raise ValueError(f"{path}: expected one .mcap file to recover, found {len(mcaps)}")
    original = mcaps[0]
    schemas, channels, messages, clean_end = _read_complete_records(original)
    if not channels:
        raise ValueError(f"{original}: no complete MCAP chunk with topic definitions, nothing to recover")

    typestore = get_typestore(Stores.EMPTY)
    for schema in schemas.values():
        typestore.register(get_types_from_msg(schema.data.decode("utf-8"), schema.name))

    counts: dict[str, int] = {}
    with tempfile.TemporaryDirectory(prefix=f".{path.name}.recover-", dir=path.parent) as tmp:
        rebuilt = Path(tmp) / path.name
        writer = Writer(rebuilt, version=9, storage_plugin=StoragePlugin.MCAP)
        writer.open()
        connections = {}
        for channel in sorted(channels.values(), key=lambda c: c.id):
            schema = schemas[channel.schema_id]
            connections[channel.id] = writer.add_connection(
                channel.topic,
                schema.name,
                msgdef=schema.data.decode("utf-8"),
                rihs01=typestore.hash_rihs01(schema.name),
                serialization_format=channel.message_encoding,
                offered_qos_profiles=parse_qos(channel.metadata.get("offered_qos_profiles", "")),
            )
            counts[channel.topic] = 0
        for message in messages:
            writer.write(connections[message.channel_id], message.log_time, message.data)
            counts[channels[message.channel_id].topic] += 1
        writer.close()
        # Swap in the rebuilt file first: metadata.yaml appears last, so the bag only looks complete once it is.
        target = path / f"{path.name}.mcap"
        (rebuilt / target.name).replace(target)
        if original != target:
            original.unlink()
        (rebuilt / _METADATA).replace(path / _METADATA)
    return {
        "path": str(path),
        "recovered": True,
        "messages": len(messages),
        "topics": counts,
        "truncated": not clean_end,
    }
