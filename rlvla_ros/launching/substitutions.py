"""Launch-file substitutions: `$(var name [default])`, `$(env NAME [default])`, `$(find-pkg-share pkg)`, `$(dirname)`.

The syntax follows `launch`'s frontend grammar: outside substitutions every character is literal except `\\x`
(which stands for `x`) and `$`, which must start `$(`; a substitution is `$(name arg arg ...)` with arguments
separated by single spaces, each either a quoted string ('...' or "...", which may contain spaces and
substitutions) or a run of characters and substitutions without spaces, quotes or parentheses. Substitutions nest
and concatenate: `$(var $(var robot)_ns)/arm`.
"""

import os
import re
import shlex
from dataclasses import dataclass
from typing import Protocol, Union

from ament_index_python.packages import PackageNotFoundError, get_package_share_directory

_IDENTIFIER = re.compile(r"[A-Za-z][A-Za-z0-9_-]*")
_ARITY = {"var": (1, 2), "env": (1, 2), "find-pkg-share": (1, 1), "dirname": (0, 0)}


class SubstitutionError(ValueError):
    """A substitution string is malformed or cannot be evaluated."""


@dataclass(frozen=True)
class Substitution:
    """`$(name args...)`; each argument is itself a sequence of text and substitutions."""

    name: str
    args: tuple[tuple["Part", ...], ...]


Part = Union[str, Substitution]


@dataclass(frozen=True)
class Template:
    """A parsed launch-file string: literal text and substitutions."""

    parts: tuple[Part, ...]
    source: str = ""
    """The string as written in the file."""

    @property
    def is_text(self) -> bool:
        """True when there is no substitution, so the value is known before launching."""
        return all(isinstance(part, str) for part in self.parts)

    def text(self) -> str:
        """The literal value of a template without substitutions."""
        if not self.is_text:
            raise SubstitutionError("expected plain text without substitutions")
        return "".join(self.parts)


class SubstitutionContext(Protocol):
    """What evaluating a substitution reads: launch configurations, environment and the current file's folder."""

    configurations: dict[str, str]
    environment: dict[str, str]
    file_dir: str


class _Reader:
    """Recursive-descent reader over one string."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.pos = 0

    def peek(self, count: int = 1) -> str:
        return self.source[self.pos:self.pos + count]

    def fail(self, message: str) -> SubstitutionError:
        return SubstitutionError(f"{message} at column {self.pos + 1} of {self.source!r}")

    def template(self) -> tuple[Part, ...]:
        parts: list[Part] = []
        text: list[str] = []
        while self.pos < len(self.source):
            char = self.source[self.pos]
            if char == "\\" and self.pos + 1 < len(self.source):
                text.append(self.source[self.pos + 1])
                self.pos += 2
            elif char == "$":
                if self.peek(2) != "$(":
                    raise self.fail("'$' must start a substitution '$(...)'; write '\\$' for a literal '$'")
                _flush(text, parts)
                parts.append(self.substitution(quote=""))
            else:
                text.append(char)
                self.pos += 1
        _flush(text, parts)
        return tuple(parts)

    def substitution(self, quote: str) -> Substitution:
        self.pos += 2  # past "$("
        match = _IDENTIFIER.match(self.source, self.pos)
        if match is None:
            raise self.fail("expected a substitution name after '$('")
        name = match.group()
        self.pos = match.end()
        args: list[tuple[Part, ...]] = []
        while self.peek() == " ":
            self.pos += 1
            args.append(self.argument(quote))
        if self.peek() != ")":
            raise self.fail(f"expected ')' or a single space before the next argument of $({name} ...)")
        self.pos += 1
        if name not in _ARITY:
            raise SubstitutionError(
                f"unsupported substitution '$({name} ...)'; supported: {', '.join(sorted(_ARITY))}")
        low, high = _ARITY[name]
        if not low <= len(args) <= high:
            expected = str(low) if low == high else f"{low} or {high}"
            raise SubstitutionError(f"substitution '{name}' expects {expected} argument(s), got {len(args)}")
        return Substitution(name, tuple(args))

    def argument(self, quote: str) -> tuple[Part, ...]:
        char = self.peek()
        if char in ("'", '"') and not quote:
            return self.quoted(char)
        parts: list[Part] = []
        text: list[str] = []
        while self.pos < len(self.source):
            char = self.source[self.pos]
            if char == "\\" and self.pos + 1 < len(self.source):
                text.append(self.source[self.pos + 1])
                self.pos += 2
            elif char == "$" and self.peek(2) == "$(":
                _flush(text, parts)
                parts.append(self.substitution(quote))
            elif char in " ()'\"$":
                break
            else:
                text.append(char)
                self.pos += 1
        _flush(text, parts)
        if not parts:
            raise self.fail("expected a substitution argument")
        return tuple(parts)

    def quoted(self, quote: str) -> tuple[Part, ...]:
        self.pos += 1
        parts: list[Part] = []
        text: list[str] = []
        while self.pos < len(self.source) and self.source[self.pos] != quote:
            char = self.source[self.pos]
            if char == "\\" and self.pos + 1 < len(self.source):
                text.append(self.source[self.pos + 1])
                self.pos += 2
            elif char == "$":
                if self.peek(2) != "$(":
                    raise self.fail("'$' must start a substitution '$(...)'; write '\\$' for a literal '$'")
                _flush(text, parts)
                parts.append(self.substitution(quote))
            else:
                text.append(char)
                self.pos += 1
        if self.pos >= len(self.source):
            raise self.fail(f"unterminated {quote} quote")
        self.pos += 1
        _flush(text, parts)
        return tuple(parts)


def _flush(text: list[str], parts: list[Part]) -> None:
    if text:
        parts.append("".join(text))
        text.clear()


def parse_template(source: str) -> Template:
    """Parse `source` into a Template; SubstitutionError on bad syntax or an unsupported substitution."""
    return Template(_Reader(source).template(), source)


def perform(template: Template | tuple[Part, ...], context: SubstitutionContext) -> str:
    """Evaluate a template (or substitution argument) to a string; SubstitutionError if something is missing."""
    parts = template.parts if isinstance(template, Template) else template
    return "".join(part if isinstance(part, str) else _perform_one(part, context) for part in parts)


def _perform_one(substitution: Substitution, context: SubstitutionContext) -> str:
    args = substitution.args
    if substitution.name == "var":
        name = perform(args[0], context)
        if name in context.configurations:
            return context.configurations[name]
        if len(args) == 2:
            return perform(args[1], context)
        raise SubstitutionError(f"launch configuration '{name}' does not exist")
    if substitution.name == "env":
        name = perform(args[0], context)
        if name in context.environment:
            return context.environment[name]
        if len(args) == 2:
            return perform(args[1], context)
        raise SubstitutionError(f"environment variable '{name}' does not exist")
    if substitution.name == "find-pkg-share":
        package = perform(args[0], context)
        try:
            return get_package_share_directory(package)
        except PackageNotFoundError:
            raise SubstitutionError(
                f"package '{package}' not found on AMENT_PREFIX_PATH "
                f"({os.environ.get('AMENT_PREFIX_PATH', 'unset')})") from None
    return context.file_dir  # dirname, the only other name the parser accepts


def split_command_line(template: Template, context: SubstitutionContext) -> list[str]:
    """Evaluate an `args`/`ros_args` attribute into argv items, as `launch` does.

    Literal text is split like a shell would (quotes group words); the value of a substitution is never split and
    joins the text it touches: `--config $(var dir)/a.yaml` gives two items whatever spaces `dir` contains.
    """
    items: list[list[str]] = []
    current: list[str] = []

    def close_item() -> None:
        nonlocal current
        if current:
            items.append(current)
        current = []

    for part in template.parts:
        if not isinstance(part, str):
            current.append(_perform_one(part, context))
            continue
        try:
            tokens = shlex.split(part)
        except ValueError as error:
            raise SubstitutionError(f"cannot split command line {part!r}: {error}") from None
        if not tokens:
            close_item()
            continue
        if part[0].isspace():
            close_item()
        current.append(tokens[0])
        for token in tokens[1:]:
            close_item()
            current.append(token)
        if part[-1].isspace():
            close_item()
    close_item()
    return ["".join(item) for item in items]
