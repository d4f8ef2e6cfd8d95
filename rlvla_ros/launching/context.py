"""The state a launch file is evaluated in: launch configurations, environment and the current file."""

import os
from dataclasses import dataclass, field

from rlvla_ros.launching.substitutions import SubstitutionError

_TRUE = ("true", "1")
_FALSE = ("false", "0")


@dataclass
class LaunchContext:
    """Launch configurations (args, lets, `ros_namespace`), the environment for new processes, and scoping."""

    configurations: dict[str, str] = field(default_factory=dict)
    """Launch configurations by name: declared args, `let` values and the pushed `ros_namespace`."""
    environment: dict[str, str] = field(default_factory=lambda: dict(os.environ))
    """Environment that `$(env ...)` reads, `set_env` writes and new processes start with."""
    file_path: str = ""
    """Launch file being evaluated, for `$(dirname)`."""
    _scopes: list[tuple[dict[str, str], dict[str, str]]] = field(default_factory=list)

    @property
    def file_dir(self) -> str:
        return os.path.dirname(os.path.abspath(self.file_path))

    def push_scope(self) -> None:
        """Start a scope (scoped `group`): changes to configurations and environment end with `pop_scope`."""
        self._scopes.append((dict(self.configurations), dict(self.environment)))

    def pop_scope(self) -> None:
        self.configurations, self.environment = self._scopes.pop()


def evaluate_condition_expression(value: str) -> bool:
    """`launch`'s truth rule for `if`/`unless`: stripped, case-insensitive true/1 or false/0, else an error."""
    normalized = value.strip().lower()
    if normalized in _TRUE:
        return True
    if normalized in _FALSE:
        return False
    raise SubstitutionError(
        f"condition expression {value!r} is not one of: {', '.join(_TRUE + _FALSE)} (case-insensitive)")
