"""The entity model of a launch file and its construction from YAML tags (the supported subset of launch_yaml).

Supported tags: `arg`, `let`, `set_env`, `push_ros_namespace` (also spelled `push-ros-namespace`), `group`,
`include` and `node`; every tag takes `if` or `unless`. Anything else, and any attribute a tag does not support,
is an error that names it and its line.
"""

from dataclasses import dataclass
from collections.abc import Callable, Iterator
from typing import Any, Union

from rlvla_ros.launching.substitutions import SubstitutionError, Template, parse_template
from rlvla_ros.launching.yaml_source import Entity, load_launch_file


@dataclass(frozen=True)
class Condition:
    """`if: <expr>` (negate=False) or `unless: <expr>` (negate=True)."""

    expression: Template
    negate: bool


@dataclass(frozen=True)
class DeclareArgument:
    """`arg`: a launch argument, stored in the launch configuration of the same name."""

    name: str
    default: Template | None
    description: str
    choices: tuple[str, ...] | None
    condition: Condition | None
    line: int


@dataclass(frozen=True)
class SetConfiguration:
    """`let`: set a launch configuration."""

    name: Template
    value: Template
    condition: Condition | None
    line: int


@dataclass(frozen=True)
class SetEnvironment:
    """`set_env`: set an environment variable for the processes started after it."""

    name: Template
    value: Template
    condition: Condition | None
    line: int


@dataclass(frozen=True)
class PushRosNamespace:
    """`push_ros_namespace`: prefix the namespace of the following nodes (until the enclosing scope ends)."""

    namespace: Template
    condition: Condition | None
    line: int


@dataclass(frozen=True)
class Group:
    """`group`: nested actions; `scoped` (default true) undoes their configuration and environment changes."""

    actions: tuple["Action", ...]
    scoped: bool
    condition: Condition | None
    line: int


@dataclass(frozen=True)
class Include:
    """`include`: evaluate another YAML launch file here, after setting its `arg` values as configurations."""

    file: Template
    arguments: tuple[tuple[Template, Template], ...]
    condition: Condition | None
    line: int


ScalarValue = Union[Template, bool, int, float]


@dataclass(frozen=True)
class Parameter:
    """A `param` item with `name`: a value (scalar or tuple for a list) or nested parameters."""

    name: Template
    value: ScalarValue | tuple[ScalarValue, ...] | tuple["Parameter", ...]


@dataclass(frozen=True)
class ParameterFile:
    """A `param` item with `from`: a ROS parameters YAML file."""

    path: Template


@dataclass(frozen=True)
class Node:
    """`node`: one ROS node process."""

    package: Template | None
    executable: Template
    name: Template | None
    namespace: Template | None
    exec_name: Template | None
    arguments: Template | None
    ros_arguments: Template | None
    parameters: tuple[Parameter | ParameterFile, ...]
    remappings: tuple[tuple[Template, Template], ...]
    env: tuple[tuple[Template, Template], ...]
    output: Template | None
    respawn: Template | None
    respawn_delay_s: float | None
    respawn_max_retries: int | None
    condition: Condition | None
    line: int


Action = Union[DeclareArgument, SetConfiguration, SetEnvironment, PushRosNamespace, Group, Include, Node]


@dataclass(frozen=True)
class LaunchDescription:
    """The actions of one launch file."""

    path: str
    actions: tuple[Action, ...]


def _template(entity: Entity, name: str, *, optional: bool = True) -> Template | None:
    value = entity.get(name, optional=optional)
    if value is None:
        return None
    try:
        return parse_template(value)
    except SubstitutionError as error:
        raise entity.error(f"in attribute '{name}' of '{entity.type_name}': {error}", name) from None


def _required(entity: Entity, name: str) -> Template:
    template = _template(entity, name, optional=False)
    assert template is not None
    return template


def _plain(entity: Entity, name: str, *, optional: bool = True) -> str | None:
    """An attribute that must be known without launching (names and descriptions of `arg`)."""
    template = _template(entity, name, optional=optional)
    if template is None:
        return None
    if not template.is_text:
        raise entity.error(f"attribute '{name}' of '{entity.type_name}' cannot contain substitutions", name)
    return template.text()


def _condition(entity: Entity) -> Condition | None:
    if_expression = _template(entity, "if")
    unless_expression = _template(entity, "unless")
    if if_expression is not None and unless_expression is not None:
        raise entity.error(f"'{entity.type_name}' cannot have both 'if' and 'unless'")
    if if_expression is not None:
        return Condition(if_expression, negate=False)
    if unless_expression is not None:
        return Condition(unless_expression, negate=True)
    return None


def _pairs(entity: Entity, attribute: str, first: str, second: str) -> tuple[tuple[Template, Template], ...]:
    pairs = []
    for item in entity.get(attribute, "list") or []:
        pairs.append((_required(item, first), _required(item, second)))
        item.check_all_read()
    return tuple(pairs)


def _parse_arg(entity: Entity) -> DeclareArgument:
    choices = None
    if entity.has("choice"):
        items = entity.get("choice", "list")
        choices = tuple(_plain(item, "value", optional=False) for item in items)
        for item in items:
            item.check_all_read()
    return DeclareArgument(
        name=_plain(entity, "name", optional=False),
        default=_template(entity, "default"),
        description=_plain(entity, "description") or "no description given",
        choices=choices,
        condition=_condition(entity),
        line=entity.line,
    )


def _parse_let(entity: Entity) -> SetConfiguration:
    return SetConfiguration(_required(entity, "name"), _required(entity, "value"), _condition(entity), entity.line)


def _parse_set_env(entity: Entity) -> SetEnvironment:
    return SetEnvironment(_required(entity, "name"), _required(entity, "value"), _condition(entity), entity.line)


def _parse_push_ros_namespace(entity: Entity) -> PushRosNamespace:
    return PushRosNamespace(_required(entity, "namespace"), _condition(entity), entity.line)


def _parse_group(entity: Entity) -> Group:
    scoped = entity.get("scoped", "bool")
    actions = tuple(parse_action(child) for child in entity.children())
    return Group(actions, True if scoped is None else scoped, _condition(entity), entity.line)


def _parse_include(entity: Entity) -> Include:
    return Include(_required(entity, "file"), _pairs(entity, "arg", "name", "value"), _condition(entity),
                   entity.line)


def _parameter_value(entity: Entity) -> ScalarValue | tuple[ScalarValue, ...]:
    raw = entity.get("value", "value")
    items = raw if isinstance(raw, list) else [raw]
    values: list[ScalarValue] = []
    plain_types = set()
    for item in items:
        if isinstance(item, str):
            try:
                template = parse_template(item)
            except SubstitutionError as error:
                raise entity.error(f"in parameter value: {error}", "value") from None
            if template.is_text:
                plain_types.add(str)
            values.append(template)
        elif isinstance(item, (bool, int, float)):
            plain_types.add(type(item))
            values.append(item)
        else:
            raise entity.error(f"a parameter list may only hold scalars, got {item!r}", "value")
    if len(plain_types) > 1:
        raise entity.error(f"the items of a parameter list must all have one type, got {raw!r}", "value")
    return tuple(values) if isinstance(raw, list) else values[0]


def _parse_parameter(entity: Entity) -> Parameter | ParameterFile:
    if entity.has("from"):
        if entity.has("name"):
            raise entity.error("'param' cannot have both 'name' and 'from'")
        parameter_file = ParameterFile(_required(entity, "from"))
        entity.check_all_read()
        return parameter_file
    if not entity.has("name"):
        raise entity.error("'param' needs 'name' (a value or nested params) or 'from' (a parameters file)")
    name = _required(entity, "name")
    if entity.has("value") and entity.has("param"):
        raise entity.error("'param' cannot have both 'value' and nested 'param'")
    if entity.has("value"):
        value: Any = _parameter_value(entity)
    elif entity.has("param"):
        value = tuple(_parse_parameter(child) for child in entity.get("param", "list"))
        if any(isinstance(child, ParameterFile) for child in value):
            raise entity.error("nested 'param' items cannot use 'from'", "param")
    else:
        raise entity.error("'param' with 'name' needs 'value' or nested 'param'")
    entity.check_all_read()
    return Parameter(name, value)


def _parse_node(entity: Entity) -> Node:
    delay = entity.get("respawn_delay", "float")
    if delay is not None and delay < 0:
        raise entity.error(f"respawn_delay must be >= 0, got {delay}", "respawn_delay")
    return Node(
        package=_template(entity, "pkg"),
        executable=_required(entity, "exec"),
        name=_template(entity, "name"),
        namespace=_template(entity, "namespace"),
        exec_name=_template(entity, "exec_name"),
        arguments=_template(entity, "args"),
        ros_arguments=_template(entity, "ros_args"),
        parameters=tuple(_parse_parameter(item) for item in entity.get("param", "list") or []),
        remappings=_pairs(entity, "remap", "from", "to"),
        env=_pairs(entity, "env", "name", "value"),
        output=_template(entity, "output"),
        respawn=_template(entity, "respawn"),
        respawn_delay_s=delay,
        respawn_max_retries=entity.get("respawn_max_retries", "int"),
        condition=_condition(entity),
        line=entity.line,
    )


_PARSERS: dict[str, Callable[[Entity], Action]] = {
    "arg": _parse_arg,
    "let": _parse_let,
    "set_env": _parse_set_env,
    "push_ros_namespace": _parse_push_ros_namespace,
    "push-ros-namespace": _parse_push_ros_namespace,
    "group": _parse_group,
    "include": _parse_include,
    "node": _parse_node,
}


def parse_action(entity: Entity) -> Action:
    """Build the action for one tag; LaunchFileError for unknown tags and unsupported attributes."""
    parser = _PARSERS.get(entity.type_name)
    if parser is None:
        raise entity.error(f"unsupported tag '{entity.type_name}'; supported: {', '.join(sorted(_PARSERS))}")
    action = parser(entity)
    entity.check_all_read()
    return action


def parse_description(path: str) -> LaunchDescription:
    """Parse the YAML launch file at `path` into its actions."""
    root = load_launch_file(path)
    actions = tuple(parse_action(entity) for entity in root.children())
    root.check_all_read()
    return LaunchDescription(path, actions)


def declared_arguments(
    actions: tuple[Action, ...], conditional: bool = False
) -> Iterator[tuple[DeclareArgument, bool]]:
    """Yield (DeclareArgument, is_conditional) for the args of these actions and their groups (not includes)."""
    for action in actions:
        is_conditional = conditional or action.condition is not None
        if isinstance(action, DeclareArgument):
            yield action, is_conditional
        elif isinstance(action, Group):
            yield from declared_arguments(action.actions, is_conditional)
