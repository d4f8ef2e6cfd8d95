"""Evaluate a launch file into a `LaunchPlan`: the processes to start, with their final command lines.

Evaluation follows `launch`'s visiting order and scoping: actions run top to bottom; a scoped `group` restores
launch configurations and environment when it ends; `include` is not scoped (its args and everything the included
file sets stay visible afterwards, as with `ros2 launch`: wrap it in a `group` to scope it). The whole file is
evaluated before any process starts, so a bad launch file starts nothing.
"""

import os
import shlex
import shutil
import tempfile
from dataclasses import dataclass, field
from typing import Any

import yaml

from rlvla_ros.launching.context import LaunchContext, evaluate_condition_expression
from rlvla_ros.launching.entities import (
    Action,
    DeclareArgument,
    Group,
    Include,
    LaunchDescription,
    Node,
    Parameter,
    ParameterFile,
    PushRosNamespace,
    SetConfiguration,
    SetEnvironment,
    declared_arguments,
    parse_description,
)
from rlvla_ros.launching.errors import LaunchFileError
from rlvla_ros.launching.executables import find_executable
from rlvla_ros.launching.ros_node import (
    check_parameter_value,
    make_namespace_absolute,
    parameter_from_text,
    parameters_file_text,
    prefix_namespace,
    validate_namespace,
    validate_node_name,
)
from rlvla_ros.launching.substitutions import SubstitutionError, Template, perform, split_command_line

OUTPUT_MODES = ("screen", "log", "both")
DEFAULT_SIGNAL_TIMEOUT_S = 5.0


@dataclass
class ProcessSpec:
    """One node process, fully resolved."""

    label: str
    """Output prefix and log name, `<exec_name or executable>-<N>` as ros2 launch numbers processes."""
    cmd: list[str]
    """Command line: executable, `args`, then the ROS arguments launch_ros builds."""
    env: dict[str, str]
    """Complete environment of the process."""
    output: str = "log"
    """'screen' (stdout and stderr to the terminal), 'log' (stdout to launch.log, stderr to both) or 'both'."""
    respawn: bool = False
    """Start the process again whenever it exits, until shutdown."""
    respawn_delay_s: float = 0.0
    """Wait before a respawn."""
    respawn_max_retries: int = -1
    """Respawns allowed; negative means no limit."""
    sigterm_timeout_s: float = DEFAULT_SIGNAL_TIMEOUT_S
    """On shutdown: seconds after SIGINT before SIGTERM (launch configuration `sigterm_timeout`)."""
    sigkill_timeout_s: float = DEFAULT_SIGNAL_TIMEOUT_S
    """On shutdown: seconds after SIGTERM before SIGKILL (launch configuration `sigkill_timeout`)."""


@dataclass
class LaunchPlan:
    """What a launch file resolves to for given arguments."""

    processes: list[ProcessSpec]
    """Node processes in start order."""
    configurations: dict[str, str]
    """Launch configurations at the end of the top-level file."""
    params_dir: str
    """Folder holding the parameter files written for inline `param` items."""
    warnings: list[str] = field(default_factory=list)
    """Problems ros2 launch also only warns about (missing `param from:` files are skipped)."""

    def cleanup(self) -> None:
        """Delete the parameter files written for this plan."""
        shutil.rmtree(self.params_dir, ignore_errors=True)

    def describe(self) -> str:
        """Human-readable plan: each process, its command line and its generated parameter files."""
        lines = []
        for spec in self.processes:
            respawn = f", respawn after {spec.respawn_delay_s} s" if spec.respawn else ""
            lines.append(f"[{spec.label}] output={spec.output}{respawn}")
            lines.append(f"    {shlex.join(spec.cmd)}")
            for path in _generated_params_files(spec.cmd, self.params_dir):
                with open(path, encoding="utf-8") as stream:
                    lines.extend(f"    | {line}" for line in stream.read().splitlines())
        lines.extend(f"warning: {warning}" for warning in self.warnings)
        return "\n".join(lines)


def _generated_params_files(cmd: list[str], params_dir: str) -> list[str]:
    return [value for flag, value in zip(cmd, cmd[1:])
            if flag == "--params-file" and os.path.dirname(value) == params_dir]


class _Evaluator:
    def __init__(self, params_dir: str) -> None:
        self.params_dir = params_dir
        self.processes: list[ProcessSpec] = []
        self.warnings: list[str] = []
        self._params_files = 0
        self._include_stack: list[str] = []

    def include_file(self, path: str, arguments: list[tuple[Template | str, Template | str]],
                     context: LaunchContext, line: int | None) -> None:
        """Set `arguments` as configurations, then evaluate the file at `path` (like IncludeLaunchDescription)."""
        path = os.path.abspath(path)  # a relative path is relative to the working directory, as in launch
        including_file = context.file_path or None
        if path in self._include_stack:
            raise LaunchFileError(f"include cycle: {' -> '.join(self._include_stack + [path])}", including_file, line)
        if not path.endswith((".yaml", ".yml")):
            raise LaunchFileError(f"only YAML launch files can be included here, not {path}", including_file, line)
        if not os.path.isfile(path):
            raise LaunchFileError(f"launch file {path} does not exist", including_file, line)
        description = parse_description(path)
        names = [self._text(name, context) for name, _ in arguments]
        for argument, conditional in declared_arguments(description.actions):
            if argument.default is None and not conditional and argument.name not in names:
                raise LaunchFileError(
                    f"{path} is missing required argument '{argument.name}' "
                    f"(description: '{argument.description}'), given: [{', '.join(names)}]",
                    including_file or path, line or argument.line)
        for name, value in arguments:
            context.configurations[self._text(name, context)] = self._text(value, context)
        self._visit_file(description, context)

    @staticmethod
    def _text(value: Template | str, context: LaunchContext) -> str:
        return value if isinstance(value, str) else perform(value, context)

    def _visit_file(self, description: LaunchDescription, context: LaunchContext) -> None:
        parent_file = context.file_path
        self._include_stack.append(description.path)
        context.file_path = description.path
        try:
            self._visit_all(description.actions, context)
        finally:
            context.file_path = parent_file
            self._include_stack.pop()

    def _visit_all(self, actions: tuple[Action, ...], context: LaunchContext) -> None:
        for action in actions:
            try:
                if action.condition is not None:
                    value = evaluate_condition_expression(perform(action.condition.expression, context))
                    if value == action.condition.negate:
                        continue
                self._visit(action, context)
            except SubstitutionError as error:
                raise LaunchFileError(str(error), context.file_path, action.line) from None

    def _visit(self, action: Action, context: LaunchContext) -> None:
        if isinstance(action, DeclareArgument):
            self._declare(action, context)
        elif isinstance(action, SetConfiguration):
            context.configurations[perform(action.name, context)] = perform(action.value, context)
        elif isinstance(action, SetEnvironment):
            context.environment[perform(action.name, context)] = perform(action.value, context)
        elif isinstance(action, PushRosNamespace):
            namespace = make_namespace_absolute(
                prefix_namespace(context.configurations.get("ros_namespace"), perform(action.namespace, context)))
            validate_namespace(namespace)
            context.configurations["ros_namespace"] = namespace
        elif isinstance(action, Group):
            if action.scoped:
                context.push_scope()
            try:
                self._visit_all(action.actions, context)
            finally:
                if action.scoped:
                    context.pop_scope()
        elif isinstance(action, Include):
            self.include_file(perform(action.file, context), list(action.arguments), context, action.line)
        else:
            self.processes.append(self._node(action, context))

    @staticmethod
    def _declare(argument: DeclareArgument, context: LaunchContext) -> None:
        if argument.name not in context.configurations:
            if argument.default is None:
                raise SubstitutionError(f"required launch argument '{argument.name}' "
                                        f"(description: '{argument.description}') was not provided")
            context.configurations[argument.name] = perform(argument.default, context)
        value = context.configurations[argument.name]
        if argument.choices is not None and value not in argument.choices:
            raise SubstitutionError(
                f"argument '{argument.name}' has value '{value}', valid choices are: {list(argument.choices)}")

    def _node(self, node: Node, context: LaunchContext) -> ProcessSpec:
        executable = perform(node.executable, context)
        if node.package is not None:
            try:
                executable = find_executable(perform(node.package, context), executable)
            except LookupError as error:
                raise SubstitutionError(str(error)) from None
        cmd = [executable]
        if node.arguments is not None:
            cmd += split_command_line(node.arguments, context)
        if node.ros_arguments is not None:
            cmd += ["--ros-args", *split_command_line(node.ros_arguments, context)]
        cmd.append("--ros-args")
        name = None
        if node.name is not None:
            name = perform(node.name, context)
            validate_node_name(name)
            cmd += ["-r", f"__node:={name}"]
        namespace = make_namespace_absolute(prefix_namespace(
            context.configurations.get("ros_namespace"),
            None if node.namespace is None else perform(node.namespace, context)))
        if namespace is not None:
            validate_namespace(namespace)
            cmd += ["-r", f"__ns:={namespace}"]
        full_name = prefix_namespace(namespace, name) if name is not None and namespace is not None else None
        for parameter in node.parameters:
            if isinstance(parameter, ParameterFile):
                path = perform(parameter.path, context)
                if not os.path.isfile(path):
                    self.warnings.append(f"{context.file_path}:{node.line}: parameter file {path!r} is not a file, "
                                         "skipped (as ros2 launch does)")
                    continue
            else:
                values: dict[str, Any] = {}
                _flatten(parameter, "", context, values)
                path = self._write_params_file(parameters_file_text(full_name, values))
            cmd += ["--params-file", path]
        for source, target in node.remappings:
            cmd += ["-r", f"{perform(source, context)}:={perform(target, context)}"]
        env = dict(context.environment)
        env.update((perform(key, context), perform(value, context)) for key, value in node.env)
        label = os.path.basename(cmd[0]) if node.exec_name is None else perform(node.exec_name, context)
        return ProcessSpec(
            label=f"{label}-{len(self.processes) + 1}",
            cmd=cmd,
            env=env,
            output=_output_mode(node, context),
            respawn=node.respawn is not None and _yaml_bool("respawn", perform(node.respawn, context)),
            respawn_delay_s=node.respawn_delay_s or 0.0,
            respawn_max_retries=-1 if node.respawn_max_retries is None else node.respawn_max_retries,
            sigterm_timeout_s=_timeout(context, "sigterm_timeout"),
            sigkill_timeout_s=_timeout(context, "sigkill_timeout"),
        )

    def _write_params_file(self, text: str) -> str:
        self._params_files += 1
        path = os.path.join(self.params_dir, f"launch_params_{self._params_files}.yaml")
        with open(path, "w", encoding="utf-8") as stream:
            stream.write(text)
        return path


def _flatten(parameter: Parameter, prefix: str, context: LaunchContext, out: dict[str, Any]) -> None:
    """Nested params become dotted names (`a: {b: 1}` is `a.b: 1`), as launch_ros writes them."""
    name = prefix + perform(parameter.name, context)
    value = parameter.value
    if isinstance(value, tuple) and value and isinstance(value[0], Parameter):
        for child in value:
            _flatten(child, name + ".", context, out)
        return
    if isinstance(value, tuple):
        out[name] = check_parameter_value(name, [_scalar(name, item, context) for item in value])
    else:
        out[name] = _scalar(name, value, context)


def _scalar(name: str, value: Any, context: LaunchContext) -> Any:
    """Plain text stays a string; text with substitutions is read as YAML after substituting; numbers stay."""
    if not isinstance(value, Template):
        return value
    if value.is_text:
        return value.text()
    return parameter_from_text(name, perform(value, context))


def _output_mode(node: Node, context: LaunchContext) -> str:
    mode = "log" if node.output is None else perform(node.output, context)
    if mode not in OUTPUT_MODES:
        raise SubstitutionError(f"unsupported output '{mode}'; supported: {', '.join(OUTPUT_MODES)}")
    return mode


def _yaml_bool(attribute: str, text: str) -> bool:
    """Boolean attributes of `node` (respawn) are read with YAML rules, as launch does."""
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        value = None
    if not isinstance(value, bool):
        raise SubstitutionError(f"'{attribute}' must be a boolean (true/false), got {text!r}")
    return value


def _timeout(context: LaunchContext, name: str) -> float:
    text = context.configurations.get(name)
    if text is None:
        return DEFAULT_SIGNAL_TIMEOUT_S
    try:
        return float(text)
    except ValueError:
        raise SubstitutionError(f"launch configuration '{name}' must be a number of seconds, got {text!r}") from None


def parse_launch_file(path: str, arguments: dict[str, str] | None = None) -> LaunchPlan:
    """Evaluate the YAML launch file at `path` with `arguments` (like `ros2 launch <file> name:=value`).

    Inline parameters are written to ROS parameter files in a new temporary folder, which `LaunchPlan.cleanup`
    deletes. Raises LaunchFileError, naming file and line, for anything unsupported, malformed or unresolvable.
    """
    params_dir = tempfile.mkdtemp(prefix="rlvla_launch_")
    context = LaunchContext()
    evaluator = _Evaluator(params_dir)
    try:
        evaluator.include_file(path, list((arguments or {}).items()), context, None)
    except BaseException:
        shutil.rmtree(params_dir, ignore_errors=True)
        raise
    return LaunchPlan(evaluator.processes, context.configurations, params_dir, evaluator.warnings)


def launch_arguments(path: str) -> list[tuple[DeclareArgument, bool]]:
    """The `arg`s a launch file declares outside includes, each with whether it is under a condition."""
    return list(declared_arguments(parse_description(path).actions))
