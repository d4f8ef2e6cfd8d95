"""Read a YAML launch file into `Entity` objects that remember the line of every tag and attribute.

This mirrors `launch_yaml`'s entity model: the file is `launch: [<tag>: <attributes>, ...]`, every tag is a mapping
with exactly one key, and an attribute is a scalar, a list of scalars or a list of mappings (`param`, `remap`,
`arg`, `env`). Unlike `yaml.safe_load`, every mapping keeps the line of each key, so that errors can point at it.
"""

from typing import Any

import yaml
from yaml.constructor import SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from rlvla_ros.launching.errors import LaunchFileError


class _Mapping(dict):
    """A YAML mapping with the 1-based line of the mapping and of each of its keys."""

    line: int
    key_lines: dict[str, int]


class _Sequence(list):
    """A YAML sequence with its 1-based line."""

    line: int


def _convert(node: Node, constructor: SafeConstructor, path: str) -> Any:
    line = node.start_mark.line + 1
    if isinstance(node, ScalarNode):
        return constructor.construct_object(node)
    if isinstance(node, SequenceNode):
        sequence = _Sequence(_convert(item, constructor, path) for item in node.value)
        sequence.line = line
        return sequence
    if isinstance(node, MappingNode):
        mapping = _Mapping()
        mapping.line = line
        mapping.key_lines = {}
        for key_node, value_node in node.value:
            key = constructor.construct_object(key_node)
            key_line = key_node.start_mark.line + 1
            if not isinstance(key, str):
                raise LaunchFileError(f"keys must be strings, got {key!r}", path, key_line)
            if key in mapping:
                raise LaunchFileError(f"duplicate key '{key}'", path, key_line)
            mapping[key] = _convert(value_node, constructor, path)
            mapping.key_lines[key] = key_line
        return mapping
    raise LaunchFileError(f"unsupported YAML node {node.tag}", path, line)


_KINDS: dict[str, tuple[tuple[type, ...], str]] = {
    "str": ((str,), "a string"),
    "bool": ((bool,), "a boolean"),
    "float": ((float,), "a float"),
    "int": ((int,), "an integer"),
    "value": ((str, int, float, bool, list), "a scalar or a list of scalars"),
}


class Entity:
    """One launch tag (`node`, `group`, ...) or one item of a list attribute (`param`, `remap`, ...).

    Attributes are read with `get`; `check_all_read` then rejects any attribute that nobody asked for, naming it
    and its line, which is how unsupported attributes are reported.
    """

    def __init__(self, type_name: str, element: Any, path: str, line: int) -> None:
        self.type_name = type_name
        self.path = path
        self.line = line
        self._element = element
        self._read: set[str] = set()

    def error(self, message: str, attribute: str | None = None) -> LaunchFileError:
        """A LaunchFileError located at this entity, or at one of its attributes."""
        return LaunchFileError(message, self.path, self.attribute_line(attribute) if attribute else self.line)

    def attribute_line(self, name: str) -> int:
        """Line of attribute `name` (the entity's line if it has no such attribute)."""
        if isinstance(self._element, _Mapping):
            return self._element.key_lines.get(name, self.line)
        return self.line

    def has(self, name: str) -> bool:
        return isinstance(self._element, dict) and name in self._element

    def get(self, name: str, kind: str = "str", *, optional: bool = True) -> Any:
        """Attribute `name` checked to be of `kind`, one of `_KINDS` or "list".

        Types are checked as strictly as launch_yaml checks them (it reads most attributes as strings and
        `respawn_delay` as a float), so a file accepted here is accepted by `ros2 launch`. `list` returns a list
        of Entity (for list-of-mapping attributes such as `param`); a missing optional attribute returns None.
        """
        if not isinstance(self._element, dict) or name not in self._element:
            if optional:
                return None
            raise self.error(f"'{self.type_name}' is missing the required attribute '{name}'")
        self._read.add(name)
        value = self._element[name]
        if kind == "list":
            if not isinstance(value, list) or not value or not all(isinstance(item, dict) for item in value):
                raise self.error(f"attribute '{name}' of '{self.type_name}' must be a list of mappings", name)
            return [Entity(name, item, self.path, item.line) for item in value]
        types, description = _KINDS[kind]
        if not isinstance(value, types) or (kind == "int" and isinstance(value, bool)):
            hint = {"str": " (quote it: launch_yaml reads this attribute as a string)",
                    "float": " (write it with a decimal point, e.g. 1.0)"}.get(kind, "")
            raise self.error(
                f"attribute '{name}' of '{self.type_name}' must be {description}, got {value!r}{hint}", name)
        return value

    def children(self) -> list["Entity"]:
        """Sub-entities of a `launch` or `group` tag: its list, or the `children` list of its mapping."""
        if isinstance(self._element, dict):
            if "children" not in self._element:
                raise self.error(f"'{self.type_name}' needs a 'children' list")
            self._read.add("children")
            items = self._element["children"]
        else:
            items = self._element
        if not isinstance(items, list):
            raise self.error(f"the children of '{self.type_name}' must be a list")
        entities = []
        for item in items:
            if not isinstance(item, dict) or len(item) != 1:
                line = getattr(item, "line", self.line)
                raise LaunchFileError("each entity must be a mapping with exactly one key, the tag name",
                                      self.path, line)
            (tag, element), = item.items()
            entities.append(Entity(tag, element, self.path, item.key_lines[tag]))
        return entities

    def check_all_read(self) -> None:
        """Raise naming the first attribute that was never read: it is not supported."""
        if not isinstance(self._element, dict):
            return
        for name in self._element:
            if name not in self._read:
                raise self.error(f"unsupported attribute '{name}' in '{self.type_name}'", name)


def load_launch_file(path: str) -> Entity:
    """Parse the YAML file at `path` and return its root `launch` entity."""
    try:
        with open(path, encoding="utf-8") as stream:
            node = yaml.compose(stream, Loader=yaml.SafeLoader)
    except OSError as error:
        raise LaunchFileError(f"cannot read launch file: {error.strerror}", path) from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        raise LaunchFileError(f"invalid YAML: {getattr(error, 'problem', error)}", path,
                              mark.line + 1 if mark else None) from None
    if node is None:
        raise LaunchFileError("empty launch file", path)
    root = _convert(node, SafeConstructor(), path)
    if not isinstance(root, dict) or list(root) != ["launch"]:
        raise LaunchFileError("a YAML launch file must have exactly one root key, 'launch'", path,
                              getattr(root, "line", 1))
    return Entity("launch", root["launch"], path, root.key_lines["launch"])
