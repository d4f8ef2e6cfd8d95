"""Node parameters from dataclasses: one declared ROS parameter per field, with its description, validated once.

A node's configuration is a dataclass whose fields carry `metadata={"description": ...}` and whose `__post_init__`
raises ValueError on bad values. `declare_config` declares the parameters (so `ros2 param describe` shows the
descriptions and YAML files in config/ set them), reads them back and builds the validated dataclass: a bad value in
a parameter file stops the node at start-up with a message naming the parameter.

At run time (``ros2 param set``) a change of a field goes through the same validation: a node that names the field
in ``runtime`` gets the new validated config through ``apply`` (which applies it at once, or raises ValueError to
refuse it); any other field is refused with the reason that the node reads it at start-up only. A refused change
leaves the parameter and the config as they were.
"""

import array
import dataclasses
import typing
from collections.abc import Callable, Collection
from typing import TypeVar

from rcl_interfaces.msg import ParameterDescriptor, SetParametersResult
from rclpy.exceptions import ParameterUninitializedException
from rclpy.node import Node
from rclpy.parameter import Parameter

ConfigT = TypeVar("ConfigT")

_PARAMETER_TYPES = {
    bool: Parameter.Type.BOOL,
    int: Parameter.Type.INTEGER,
    float: Parameter.Type.DOUBLE,
    str: Parameter.Type.STRING,
    list[bool]: Parameter.Type.BOOL_ARRAY,
    list[int]: Parameter.Type.INTEGER_ARRAY,
    list[float]: Parameter.Type.DOUBLE_ARRAY,
    list[str]: Parameter.Type.STRING_ARRAY,
}


def declare_config(node: Node, config_type: type[ConfigT], apply: Callable[[ConfigT], None] | None = None,
                   runtime: Collection[str] = ()) -> ConfigT:
    """Declare one parameter per field of `config_type`, then return the validated config built from them.

    Later changes of the fields in `runtime` build a new validated config and pass it to `apply`; changes of the
    other fields are refused (see the module docstring).
    """
    hints = typing.get_type_hints(config_type)
    types = {}
    values = {}
    for field in dataclasses.fields(config_type):
        parameter_type = _PARAMETER_TYPES.get(hints[field.name])
        if parameter_type is None:
            raise TypeError(f"{config_type.__name__}.{field.name}: unsupported parameter type {hints[field.name]}")
        default = field.default_factory() if field.default_factory is not dataclasses.MISSING else field.default
        # YAML files often say `rate_hz: 20` for a float: accept integers there (checked below) instead of the
        # strict typing that would refuse them.
        descriptor = ParameterDescriptor(description=field.metadata.get("description", ""),
                                         dynamic_typing=parameter_type == Parameter.Type.DOUBLE)
        # Empty lists carry no type of their own: declare the type explicitly, as ROS needs it.
        initial = default if default != [] else parameter_type
        node.declare_parameter(field.name, initial, descriptor)
        try:
            value = node.get_parameter(field.name).value
        except ParameterUninitializedException:
            value = default
        values[field.name] = _checked(field.name, value, parameter_type)
        types[field.name] = parameter_type
    unknown = set(runtime) - set(types)
    if unknown or (runtime and apply is None):
        raise TypeError(f"{config_type.__name__}: run-time parameters {sorted(runtime)} need an apply function and "
                        f"must be fields (unknown: {sorted(unknown)})")
    try:
        config = config_type(**values)
    except ValueError as error:
        raise ValueError(f"node '{node.get_name()}': invalid parameters: {error}") from None
    current = [config]

    def on_set_parameters(parameters: list[Parameter]) -> SetParametersResult:
        changed = {p.name: p.value for p in parameters if p.name in types}
        if not changed:
            return SetParametersResult(successful=True)
        fixed = sorted(name for name in changed if name not in runtime)
        if fixed:
            return _refusal(node, f"parameter(s) {', '.join(fixed)} are read at start-up only: node "
                                  f"'{node.get_name()}' cannot apply a change while running (restart it with the new "
                                  f"value)")
        try:
            candidate = dataclasses.replace(
                current[0], **{name: _checked(name, value, types[name]) for name, value in changed.items()})
            apply(candidate)
        except ValueError as error:
            return _refusal(node, f"invalid parameters: {error}")
        except Exception as error:  # noqa: BLE001 - a failure to apply is a refusal, never a dead parameter service
            return _refusal(node, f"cannot apply {sorted(changed)}: {type(error).__name__}: {error}")
        current[0] = candidate
        node.get_logger().info(f"parameters changed at run time: {changed}")
        return SetParametersResult(successful=True)

    node.add_on_set_parameters_callback(on_set_parameters)
    return config


def _refusal(node: Node, reason: str) -> SetParametersResult:
    node.get_logger().warning(f"parameter change refused: {reason}")
    return SetParametersResult(successful=False, reason=reason)


def _checked(name: str, value, parameter_type: Parameter.Type):
    if parameter_type == Parameter.Type.DOUBLE:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"parameter '{name}' must be a number, got {value!r}")
        return float(value)
    return list(value) if isinstance(value, (list, tuple, array.array)) else value
