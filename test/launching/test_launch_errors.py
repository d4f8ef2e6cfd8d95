"""Anything outside the supported subset fails before launching, naming the construct and its line."""

import pytest

from rlvla_ros.launching import LaunchFileError, parse_launch_file


@pytest.mark.parametrize(("body", "line", "message"), [
    ("- log: {message: hi}\n", 2, r"unsupported tag 'log'"),
    ("- executable: {cmd: ls}\n", 2, r"unsupported tag 'executable'"),
    ("- node:\n    pkg: fakepkg\n    exec: fake_node\n    launch-prefix: gdb\n", 5,
     r"unsupported attribute 'launch-prefix' in 'node'"),
    ("- node:\n    exec: fake_node\n    param:\n    - {name: a, value: '1', type: str}\n", 5,
     r"unsupported attribute 'type' in 'param'"),
    ("- group:\n    forwarding: false\n    children: []\n", 3, r"unsupported attribute 'forwarding' in 'group'"),
    ("- include:\n    file: x.launch.yaml\n    let: [{name: a, value: b}]\n", 4,
     r"unsupported attribute 'let' in 'include'"),
    ("- let:\n    name: a\n    value: $(command ls)\n", 4, r"unsupported substitution '\$\(command \.\.\.\)'"),
    ("- let:\n    name: a\n    value: $(find-pkg-prefix fakepkg)\n", 4, r"unsupported substitution"),
    ("- let:\n    name: a\n    value: costs $5\n", 4, r"'\$' must start a substitution"),
    ("- let:\n    name: a\n    value: $(var a\n", 4, r"expected '\)'"),
    ("- let:\n    name: a\n    value: $(env)\n", 4, r"substitution 'env' expects 1 or 2 argument"),
    ("- arg:\n    name: rate\n    default: 10\n", 4, r"attribute 'default' of 'arg' must be a string.*quote it"),
    ("- node:\n    exec: fake_node\n    respawn: true\n", 4, r"attribute 'respawn' of 'node' must be a string"),
    ("- node:\n    exec: fake_node\n    respawn_delay: 2\n", 4, r"'respawn_delay' of 'node' must be a float.*1\.0"),
    ("- node:\n    exec: fake_node\n    param: [{name: a, value: }]\n", 4, r"must be a scalar or a list"),
    ("- node: {exec: fake_node, if: 'true', unless: 'false'}\n", 2, r"cannot have both 'if' and 'unless'"),
    ("- node: {exec: fake_node, param: [{name: a, value: '1', from: f.yaml}]}\n", 2,
     r"cannot have both 'name' and 'from'"),
    ("- node: {exec: fake_node, param: [{name: a, value: [1, x]}]}\n", 2, r"must all have one type"),
    ("- let: {name: a, value: b}\n  if: 'true'\n", 2, r"exactly one key"),
    ("- node: {exec: fake_node, name: $(var a), a: b}\n", 2, r"unsupported attribute 'a' in 'node'"),
    ("- arg: {name: $(var a)}\n", 2, r"attribute 'name' of 'arg' cannot contain substitutions"),
    ("- let: {name: a, value: b}\n- let: {name: a, value: b, value: c}\n", 3, r"duplicate key 'value'"),
])
def test_unsupported_or_malformed_constructs_name_the_line(ament_prefix, launch_file, body, line, message):
    path = launch_file("launch:\n" + body)
    with pytest.raises(LaunchFileError, match=message) as error:
        parse_launch_file(path)
    assert error.value.line == line
    assert str(error.value).startswith(f"{path}:{line}: ")


def test_evaluation_errors_in_included_files_name_that_file(ament_prefix, launch_file):
    inner = launch_file("launch:\n- let: {name: a, value: x}\n- node: {exec: fake_node, output: own_log}\n",
                        name="inner.launch.yaml")
    path = launch_file("launch:\n- include: {file: $(dirname)/inner.launch.yaml}\n")
    with pytest.raises(LaunchFileError, match=r"unsupported output 'own_log'") as error:
        parse_launch_file(path)
    assert (error.value.path, error.value.line) == (inner, 3)


def test_invalid_yaml_and_wrong_root_report_lines(launch_file):
    with pytest.raises(LaunchFileError, match=r":3: invalid YAML"):
        parse_launch_file(launch_file("launch:\n- let:\n    name: a: b\n"))
    with pytest.raises(LaunchFileError, match=r"exactly one root key, 'launch'"):
        parse_launch_file(launch_file("nodes: []\n"))


def test_python_and_xml_launch_files_are_refused(launch_file, tmp_path):
    (tmp_path / "other.launch.py").write_text("")
    path = launch_file("launch:\n- include: {file: $(dirname)/other.launch.py}\n")
    with pytest.raises(LaunchFileError, match=r":2: only YAML launch files"):
        parse_launch_file(path)


def test_include_cycle_is_reported(launch_file):
    path = launch_file("launch:\n- include: {file: $(dirname)/test.launch.yaml}\n")
    with pytest.raises(LaunchFileError, match="include cycle"):
        parse_launch_file(path)


def test_invalid_node_name_and_namespace(ament_prefix, launch_file):
    with pytest.raises(LaunchFileError, match=r"invalid node name '1st'"):
        parse_launch_file(launch_file("launch:\n- node: {pkg: fakepkg, exec: fake_node, name: 1st}\n"))
    with pytest.raises(LaunchFileError, match=r"invalid namespace '/a//b'"):
        parse_launch_file(launch_file("launch:\n- node: {pkg: fakepkg, exec: fake_node, namespace: /a//b}\n"))
