"""The one error type of the launch runner: what is wrong, in which file, on which line."""


class LaunchFileError(ValueError):
    """A launch file is invalid or cannot be evaluated; the message starts with `path:line:` when known."""

    def __init__(self, message: str, path: str | None = None, line: int | None = None) -> None:
        self.reason = message
        self.path = path
        self.line = line
        where = f"{path}:{line}: " if path and line else f"{path}: " if path else ""
        super().__init__(where + message)
