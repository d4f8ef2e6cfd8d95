"""Find node executables the way `ros2 run` does: `<prefix>/lib/<package>/<executable>` on the ament index."""

import os
import pathlib

from ament_index_python.packages import PackageNotFoundError, get_package_prefix


def find_executable(package: str, executable: str) -> str:
    """Path of `executable` of `package`; LookupError naming what is missing and what exists."""
    try:
        prefix = pathlib.Path(get_package_prefix(package))
    except PackageNotFoundError:
        raise LookupError(
            f"package '{package}' is not on AMENT_PREFIX_PATH ({os.environ.get('AMENT_PREFIX_PATH', 'unset')}): "
            "activate the venv (pip-only) or source install/setup.bash (ROS 2 install)") from None
    lib_dir = prefix / "lib" / package
    path = lib_dir / executable
    if not (path.is_file() and os.access(path, os.X_OK)):
        available = sorted(p.name for p in lib_dir.iterdir()) if lib_dir.is_dir() else []
        raise LookupError(f"no executable '{executable}' in {lib_dir}; available: {', '.join(available) or 'none'}")
    return str(path)
