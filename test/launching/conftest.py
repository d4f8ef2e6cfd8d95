"""A throwaway ament prefix with a package `fakepkg` whose node executable records how it was started."""

import pathlib
import sys
import textwrap
from collections.abc import Callable

import pytest

FAKE_NODE = textwrap.dedent('''\
    #!{python}
    """Fake node: records argv, pid and start time in $FAKE_NODE_OUT, then behaves as its own args say."""
    import json, os, signal, sys, time

    own_args = sys.argv[1:sys.argv.index("--ros-args")] if "--ros-args" in sys.argv else sys.argv[1:]
    record = {{"argv": sys.argv, "pid": os.getpid(), "start_s": time.time(), "env_value": os.environ.get("FAKE_VALUE")}}
    if "--ignore-sigint" in own_args:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    if "--ignore-sigterm" in own_args:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    # The record is written last, so a test that sees it knows the output and the signal handling are in place.
    try:
        print("started", flush=True)
        print("to stderr", file=sys.stderr, flush=True)
        path = os.path.join(os.environ["FAKE_NODE_OUT"], f"{{os.getpid()}}.json")
        with open(path + ".tmp", "w") as stream:
            json.dump(record, stream)
        os.replace(path + ".tmp", path)
        if "--exit" in own_args:
            sys.exit(int(own_args[own_args.index("--exit") + 1]))
        time.sleep(30.0)
    except KeyboardInterrupt:
        print("got SIGINT", flush=True)
''')


@pytest.fixture
def ament_prefix(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> pathlib.Path:
    """`<tmp>/prefix` on AMENT_PREFIX_PATH with `fakepkg`: executable `fake_node`, share file `config/base.yaml`."""
    prefix = tmp_path / "prefix"
    (prefix / "share" / "ament_index" / "resource_index" / "packages").mkdir(parents=True)
    (prefix / "share" / "ament_index" / "resource_index" / "packages" / "fakepkg").touch()
    (prefix / "share" / "fakepkg" / "config").mkdir(parents=True)
    (prefix / "share" / "fakepkg" / "config" / "base.yaml").write_text("/**:\n  ros__parameters:\n    base: 1\n")
    lib = prefix / "lib" / "fakepkg"
    lib.mkdir(parents=True)
    node = lib / "fake_node"
    node.write_text(FAKE_NODE.format(python=sys.executable))
    node.chmod(0o755)
    monkeypatch.setenv("AMENT_PREFIX_PATH", str(prefix))
    return prefix


@pytest.fixture
def launch_file(tmp_path: pathlib.Path) -> Callable[..., str]:
    """`launch_file(text, name="test.launch.yaml")` writes a dedented launch file and returns its path."""

    def write(text: str, name: str = "test.launch.yaml") -> str:
        path = tmp_path / name
        path.write_text(textwrap.dedent(text))
        return str(path)

    return write

