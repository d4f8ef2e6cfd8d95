"""Recordings survive interruption: SIGINT/SIGTERM close the bag; after SIGKILL `recover_bag` restores it."""

import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from mcap.reader import make_reader
from rosbags.highlevel import AnyReader

from rlvla_ros.data import BagWriter, bag_needs_recovery, find_bags, make_typestore, recover_bag

REPO = Path(__file__).resolve().parents[2]

# Writes `flushed` small messages and flushes, then `pending` more that stay in the open MCAP chunk, prints
# "ready" and waits to be signalled. SIGTERM is turned into SystemExit as a node's shutdown path would.
WRITER_SCRIPT = textwrap.dedent(
    """
    import signal, sys, time
    from rlvla_ros.data import BagWriter, make_typestore

    root, flushed, pending = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    # KeyboardInterrupt on SIGINT also when started from a background job, which inherits SIGINT ignored.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    store = make_typestore()
    data = store.serialize_cdr(store.types["std_msgs/msg/Float64"](data=1.5), "std_msgs/msg/Float64")
    with BagWriter(root, flush_interval_s=3600.0) as writer:
        writer.add_topic("/value", "std_msgs/msg/Float64")
        for i in range(flushed + pending):
            if i == flushed:
                writer.flush()
            writer.write("/value", data, 10**9 + i * 10**7)
        print("ready", flush=True)
        time.sleep(60)
    """
)


def _run_and_signal(root: Path, sig: signal.Signals, flushed: int, pending: int) -> Path:
    process = subprocess.Popen(
        [sys.executable, "-c", WRITER_SCRIPT, str(root), str(flushed), str(pending)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout.readline().strip() == "ready"
        process.send_signal(sig)
        process.wait(timeout=20)
    finally:
        process.kill()
    return root / "rlvla_0000"


def _count(bag: Path) -> tuple[int, int]:
    with AnyReader([bag]) as reader:
        anyreader_count = sum(1 for _ in reader.messages())
    (mcap_path,) = bag.glob("*.mcap")
    with mcap_path.open("rb") as stream:
        mcap_count = make_reader(stream).get_summary().statistics.message_count
    return anyreader_count, mcap_count


def test_sigkill_is_recovered_up_to_the_last_flushed_chunk(tmp_path):
    bag = _run_and_signal(tmp_path, signal.SIGKILL, flushed=40, pending=15)
    assert bag_needs_recovery(bag)
    with pytest.raises(ValueError, match="recover_bag"):
        find_bags(tmp_path)

    report = recover_bag(bag)

    assert report["recovered"] and report["truncated"]
    assert report["messages"] == 40 and report["topics"] == {"/value": 40}
    assert not bag_needs_recovery(bag)
    assert _count(bag) == (40, 40)
    assert find_bags(tmp_path) == [bag]


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupted_recording_opens_directly_with_every_message(tmp_path, sig):
    bag = _run_and_signal(tmp_path, sig, flushed=40, pending=15)
    assert (bag / "metadata.yaml").is_file()
    assert _count(bag) == (55, 55)
    assert recover_bag(bag)["recovered"] is False


def test_recover_bag_rejects_bags_with_nothing_complete(tmp_path):
    bag = tmp_path / "broken"
    bag.mkdir()
    (bag / "broken.mcap").write_bytes(b"\x89MCAP0\r\n" + b"\x01" * 7)
    with pytest.raises(ValueError, match="nothing to recover"):
        recover_bag(bag)
    with pytest.raises(ValueError, match="not a bag directory"):
        recover_bag(tmp_path / "missing")


def test_flush_makes_messages_durable_without_closing(tmp_path):
    store = make_typestore()
    data = store.serialize_cdr(store.types["std_msgs/msg/Float64"](data=2.0), "std_msgs/msg/Float64")
    writer = BagWriter(tmp_path, flush_interval_s=3600.0)
    writer.add_topic("/value", "std_msgs/msg/Float64")
    for i in range(5):
        writer.write("/value", data, i + 1)
    writer.flush()
    # Simulate a crash: read the bag while the writer still holds it open, as recover_bag would after a kill.
    snapshot = tmp_path / "snapshot"
    snapshot.mkdir()
    (mcap_path,) = writer.current_path.glob("*.mcap")
    (snapshot / "snapshot.mcap").write_bytes(mcap_path.read_bytes())
    assert recover_bag(snapshot)["messages"] == 5
    writer.close()
