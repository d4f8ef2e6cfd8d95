"""ROS naming and parameter rules for `node`, as `launch_ros` applies them."""

import re
from typing import Any

import yaml

from rlvla_ros.launching.substitutions import SubstitutionError

_NAME_TOKEN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def prefix_namespace(base: str | None, namespace: str | None) -> str | None:
    """`namespace` under `base` unless it is absolute; None when both are None; no trailing '/'."""
    if base is None and namespace is None:
        return None
    if namespace is None:
        combined = base
    elif not base or namespace.startswith("/"):
        combined = namespace
    else:
        combined = ("" if base == "/" else base) + "/" + namespace
    return combined if combined == "/" else combined.rstrip("/")


def make_namespace_absolute(namespace: str | None) -> str | None:
    if namespace is None or namespace.startswith("/"):
        return namespace
    return "/" + namespace


def validate_node_name(name: str) -> None:
    """rcl's node name rule: letters, digits and underscores, not starting with a digit."""
    if not _NAME_TOKEN.fullmatch(name):
        raise SubstitutionError(f"invalid node name {name!r}: use letters, digits and '_', not starting with a digit")


def validate_namespace(namespace: str) -> None:
    """rcl's namespace rule: absolute, '/'-separated tokens that are valid names, no trailing '/'."""
    if namespace == "/":
        return
    tokens = namespace.split("/")
    if tokens[0] != "" or not all(_NAME_TOKEN.fullmatch(token) for token in tokens[1:]):
        raise SubstitutionError(
            f"invalid namespace {namespace!r}: '/'-separated tokens of letters, digits and '_', "
            "not starting with a digit, no empty token")


def _is_scalar(value: Any) -> bool:
    return isinstance(value, (str, int, float, bool))


def check_parameter_value(name: str, value: Any) -> Any:
    """A value ROS parameters can hold: a scalar or a non-empty list of one scalar type; else an error."""
    if _is_scalar(value):
        return value
    if isinstance(value, list) and value and all(_is_scalar(item) for item in value):
        if len({type(item) for item in value}) == 1:
            return value
    raise SubstitutionError(
        f"parameter '{name}' must be a bool, int, float, str or a non-empty list of one of them, got {value!r}")


def parameter_from_text(name: str, text: str) -> Any:
    """The value of a parameter whose text came from substitutions: read with YAML rules, as launch_ros does."""
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        raise SubstitutionError(f"parameter '{name}': cannot read {text!r} as YAML") from None
    return check_parameter_value(name, value)


def parameters_file_text(node_name: str | None, parameters: dict[str, Any]) -> str:
    """A ROS parameters file for one node (`/**` when its full name is unknown before it starts)."""
    return yaml.dump({node_name or "/**": {"ros__parameters": parameters}}, default_flow_style=False)
