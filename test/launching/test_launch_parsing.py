"""Evaluating YAML launch files: command lines, parameters, namespaces, conditions, includes, substitutions."""

import os
import pathlib

import pytest
import yaml

from rlvla_ros.launching import LaunchFileError, parse_launch_file


def _params_files(cmd: list[str]) -> list[str]:
    return [value for flag, value in zip(cmd, cmd[1:]) if flag == "--params-file"]


def _load(path: str) -> dict:
    with open(path) as stream:
        return yaml.safe_load(stream)


def test_node_command_line_matches_launch_ros_order(ament_prefix, launch_file):
    path = launch_file("""
        launch:
        - node:
            pkg: fakepkg
            exec: fake_node
            name: policy
            namespace: robot
            args: "--mode 'two words' --out $(env HOME)/x"
            ros_args: --log-level debug
            param:
            - {name: rate_hz, value: 10}
            remap:
            - {from: image, to: /camera/image}
            - {from: cmd, to: arm/cmd}
        """)
    plan = parse_launch_file(path)
    (spec,) = plan.processes
    executable = str(ament_prefix / "lib" / "fakepkg" / "fake_node")
    params_file = _params_files(spec.cmd)[0]
    assert spec.cmd == [
        executable, "--mode", "two words", "--out", f"{os.environ['HOME']}/x",
        "--ros-args", "--log-level", "debug",
        "--ros-args", "-r", "__node:=policy", "-r", "__ns:=/robot", "--params-file", params_file,
        "-r", "image:=/camera/image", "-r", "cmd:=arm/cmd",
    ]
    assert spec.label == "fake_node-1"
    assert spec.output == "log" and spec.respawn is False
    plan.cleanup()
    assert not os.path.exists(params_file)


def test_node_without_name_or_namespace_gets_no_remapping_arguments(ament_prefix, launch_file):
    plan = parse_launch_file(launch_file("launch:\n- node: {pkg: fakepkg, exec: fake_node}\n"))
    assert plan.processes[0].cmd[1:] == ["--ros-args"]


def test_inline_params_become_one_ros_params_file_per_item_in_order(ament_prefix, launch_file):
    path = launch_file("""
        launch:
        - let: {name: rate, value: '20'}
        - let: {name: gains, value: '[1.0, 2.5]'}
        - let: {name: quoted, value: "'42'"}
        - node:
            pkg: fakepkg
            exec: fake_node
            name: policy
            namespace: /robot
            param:
            - {name: rate_hz, value: $(var rate)}
            - from: $(find-pkg-share fakepkg)/config/base.yaml
            - name: control
              param:
              - {name: gains, value: $(var gains)}
              - {name: label, value: '42'}
              - {name: text_from_var, value: $(var quoted)}
              - {name: enabled, value: true}
              - {name: joints, value: [shoulder, elbow]}
              - name: limits
                param:
                - {name: max_speed, value: 0.5}
        """)
    plan = parse_launch_file(path)
    files = _params_files(plan.processes[0].cmd)
    assert files[1] == str(ament_prefix / "share" / "fakepkg" / "config" / "base.yaml")
    assert _load(files[0]) == {"/robot/policy": {"ros__parameters": {"rate_hz": 20}}}
    assert _load(files[2]) == {"/robot/policy": {"ros__parameters": {
        "control.gains": [1.0, 2.5],
        "control.label": "42",
        "control.text_from_var": "42",
        "control.enabled": True,
        "control.joints": ["shoulder", "elbow"],
        "control.limits.max_speed": 0.5,
    }}}
    assert len(files) == 3
    plan.cleanup()


def test_params_use_wildcard_node_key_when_full_name_is_unknown(ament_prefix, launch_file):
    plan = parse_launch_file(launch_file("""
        launch:
        - node: {pkg: fakepkg, exec: fake_node, name: policy, param: [{name: a, value: 1}]}
        """))
    assert _load(_params_files(plan.processes[0].cmd)[0]) == {"/**": {"ros__parameters": {"a": 1}}}
    plan.cleanup()


def test_missing_params_file_is_skipped_with_a_warning(ament_prefix, launch_file):
    plan = parse_launch_file(launch_file("""
        launch:
        - node: {pkg: fakepkg, exec: fake_node, param: [{from: /nonexistent/params.yaml}]}
        """))
    assert "--params-file" not in plan.processes[0].cmd
    assert len(plan.warnings) == 1 and "/nonexistent/params.yaml" in plan.warnings[0]


@pytest.mark.parametrize(("value", "started"), [
    ("true", True), ("TRUE", True), (" 1 ", True), ("false", False), ("False", False), ("0", False)])
def test_if_and_unless_follow_launch_truth_values(ament_prefix, launch_file, value, started):
    path = launch_file("""
        launch:
        - arg: {name: flag}
        - node: {pkg: fakepkg, exec: fake_node, name: when_true, if: $(var flag)}
        - node: {pkg: fakepkg, exec: fake_node, name: when_false, unless: $(var flag)}
        """)
    names = [spec.cmd[spec.cmd.index("-r") + 1] for spec in parse_launch_file(path, {"flag": value}).processes]
    assert names == ["__node:=when_true" if started else "__node:=when_false"]


def test_condition_that_is_not_a_boolean_is_an_error_with_its_line(ament_prefix, launch_file):
    path = launch_file("""
        launch:
        - arg: {name: flag, default: 'yes'}
        - node: {pkg: fakepkg, exec: fake_node, if: $(var flag)}
        """)
    with pytest.raises(LaunchFileError, match=r":4: condition expression 'yes'") as error:
        parse_launch_file(path)
    assert error.value.line == 4


def test_condition_on_group_skips_all_its_entities(ament_prefix, launch_file):
    path = launch_file("""
        launch:
        - group:
            if: 'false'
            children:
            - node: {pkg: fakepkg, exec: fake_node}
            - let: {name: inside, value: 'x'}
        - node: {pkg: fakepkg, exec: fake_node, exec_name: after}
        """)
    plan = parse_launch_file(path)
    assert [spec.label for spec in plan.processes] == ["after-1"]
    assert "inside" not in plan.configurations


def test_push_ros_namespace_nests_and_ends_with_its_scoped_group(ament_prefix, launch_file):
    path = launch_file("""
        launch:
        - group:
          - push_ros_namespace: {namespace: robot}
          - node: {pkg: fakepkg, exec: fake_node, name: a}
          - group:
            - push-ros-namespace: {namespace: arm}
            - node: {pkg: fakepkg, exec: fake_node, name: b, namespace: ctrl}
            - node: {pkg: fakepkg, exec: fake_node, name: c, namespace: /abs}
          - node: {pkg: fakepkg, exec: fake_node, name: d}
        - node: {pkg: fakepkg, exec: fake_node, name: e}
        """)
    namespaces = []
    for spec in parse_launch_file(path).processes:
        namespaces.append(next((item for item in spec.cmd if item.startswith("__ns:=")), None))
    assert namespaces == ["__ns:=/robot", "__ns:=/robot/arm/ctrl", "__ns:=/abs", "__ns:=/robot", None]


def test_unscoped_group_keeps_its_configurations(ament_prefix, launch_file):
    path = launch_file("""
        launch:
        - group: {scoped: false, children: [{let: {name: a, value: '1'}}]}
        - group: {scoped: true, children: [{let: {name: b, value: '2'}}]}
        - group: [{let: {name: c, value: '3'}}]
        """)
    configurations = parse_launch_file(path).configurations
    assert configurations.get("a") == "1" and "b" not in configurations and "c" not in configurations


def test_include_sets_args_and_leaks_them_unless_wrapped_in_a_group(ament_prefix, launch_file, tmp_path):
    launch_file("""
        launch:
        - arg: {name: robot}
        - arg: {name: rate, default: '10'}
        - let: {name: inner_value, value: $(var robot)-$(var rate)-$(var outer)}
        - node: {pkg: fakepkg, exec: fake_node, name: $(var robot)}
        """, name="inner.launch.yaml")
    path = launch_file("""
        launch:
        - let: {name: outer, value: o}
        - let: {name: rate, value: '99'}
        - include:
            file: $(dirname)/inner.launch.yaml
            arg: [{name: robot, value: first}]
        - group:
          - include:
              file: $(dirname)/inner.launch.yaml
              arg: [{name: robot, value: second}, {name: rate, value: '5'}]
        """)
    plan = parse_launch_file(path)
    assert [spec.cmd[spec.cmd.index("-r") + 1] for spec in plan.processes] == ["__node:=first", "__node:=second"]
    # Like ros2 launch: the unscoped include leaks its args and lets, and sees the parent's `rate`.
    assert plan.configurations["robot"] == "first"
    assert plan.configurations["inner_value"] == "first-99-o"
    assert plan.configurations["rate"] == "99"


def test_include_without_a_required_argument_names_it(ament_prefix, launch_file):
    launch_file("launch:\n- arg: {name: robot, description: which robot}\n", name="inner.launch.yaml")
    path = launch_file("launch:\n- include: {file: $(dirname)/inner.launch.yaml}\n")
    with pytest.raises(LaunchFileError, match=r"missing required argument 'robot' \(description: 'which robot'\)") \
            as error:
        parse_launch_file(path)
    assert (error.value.path, error.value.line) == (path, 2)


def test_required_top_level_argument_and_choices(ament_prefix, launch_file):
    path = launch_file("""
        launch:
        - arg: {name: mode, choice: [{value: sim}, {value: real}]}
        """)
    with pytest.raises(LaunchFileError, match="missing required argument 'mode'"):
        parse_launch_file(path)
    with pytest.raises(LaunchFileError, match=r"argument 'mode' has value 'fake', valid choices are"):
        parse_launch_file(path, {"mode": "fake"})
    assert parse_launch_file(path, {"mode": "real"}).configurations["mode"] == "real"


def test_substitutions_nest_and_concatenate(ament_prefix, launch_file, monkeypatch):
    monkeypatch.setenv("RLVLA_TEST_ROBOT", "ur5")
    monkeypatch.delenv("RLVLA_TEST_UNSET", raising=False)
    path = launch_file(r"""
        launch:
        - let: {name: which, value: robot}
        - let: {name: robot, value: $(env RLVLA_TEST_ROBOT)}
        - let: {name: nested, value: $(var $(var which))_arm}
        - let: {name: env_default, value: "$(env RLVLA_TEST_UNSET 'a b')"}
        - let: {name: var_default, value: $(var missing fallback)}
        - let: {name: share, value: $(find-pkg-share fakepkg)/config}
        - let: {name: here, value: $(dirname)}
        - let: {name: escaped, value: 'cost \$5 and \\ back'}
        """)
    configurations = parse_launch_file(path).configurations
    assert configurations["nested"] == "ur5_arm"
    assert configurations["env_default"] == "a b"
    assert configurations["var_default"] == "fallback"
    assert configurations["share"] == str(ament_prefix / "share" / "fakepkg" / "config")
    assert configurations["here"] == str(pathlib.Path(path).parent)
    assert configurations["escaped"] == "cost $5 and \\ back"


def test_missing_environment_variable_is_an_error_with_its_line(ament_prefix, launch_file, monkeypatch):
    monkeypatch.delenv("RLVLA_TEST_UNSET", raising=False)
    path = launch_file("launch:\n- let: {name: a, value: x}\n- let: {name: b, value: $(env RLVLA_TEST_UNSET)}\n")
    with pytest.raises(LaunchFileError, match=r":3: environment variable 'RLVLA_TEST_UNSET' does not exist"):
        parse_launch_file(path)


def test_set_env_reaches_later_nodes_and_node_env_overrides_it(ament_prefix, launch_file):
    path = launch_file("""
        launch:
        - group:
          - set_env: {name: FAKE_VALUE, value: scoped}
          - node: {pkg: fakepkg, exec: fake_node}
        - node: {pkg: fakepkg, exec: fake_node, env: [{name: FAKE_VALUE, value: own}]}
        - node: {pkg: fakepkg, exec: fake_node}
        """)
    assert [spec.env.get("FAKE_VALUE") for spec in parse_launch_file(path).processes] == ["scoped", "own", None]


def test_respawn_output_and_process_labels(ament_prefix, launch_file):
    path = launch_file("""
        launch:
        - arg: {name: sigterm_timeout, default: '0.5'}
        - node: {pkg: fakepkg, exec: fake_node, respawn: 'true', respawn_delay: 2.0, respawn_max_retries: 3,
                 output: screen}
        - node: {pkg: fakepkg, exec: fake_node, exec_name: policy, output: both}
        """)
    first, second = parse_launch_file(path).processes
    assert (first.respawn, first.respawn_delay_s, first.respawn_max_retries) == (True, 2.0, 3)
    assert (first.label, first.output, first.sigterm_timeout_s, first.sigkill_timeout_s) == (
        "fake_node-1", "screen", 0.5, 5.0)
    assert (second.label, second.output, second.respawn) == ("policy-2", "both", False)


def test_unknown_executable_names_what_exists(ament_prefix, launch_file):
    path = launch_file("launch:\n- node: {pkg: fakepkg, exec: nope}\n")
    with pytest.raises(LaunchFileError, match=r":2: no executable 'nope' .*available: fake_node"):
        parse_launch_file(path)
