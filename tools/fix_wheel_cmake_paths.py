"""Point the ROS 2 PyPI wheels' exported CMake targets at this interpreter's include dirs.

The wheels were built in a manylinux container, so their `*Export.cmake` files name include directories of that
machine (`/opt/python/cp311-cp311/...`). CMake refuses imported targets whose include paths do not exist, which
breaks `rosidl_generate_interfaces` against the venv. Rewriting the two paths is idempotent.

Usage: python tools/fix_wheel_cmake_paths.py <prefix>
"""

import pathlib
import re
import sys
import sysconfig

import numpy


def fix_prefix(prefix: pathlib.Path) -> int:
    """Rewrite the stale include paths under `prefix/share`; return the number of files changed."""
    replacements = [
        (re.compile(r"/opt/python/[^;\"]*?/site-packages/numpy/_core/include"), numpy.get_include()),
        (re.compile(r"/opt/python/cp\d+-cp\d+/include/python3\.\d+"), sysconfig.get_paths()["include"]),
    ]
    changed = 0
    for path in prefix.glob("share/**/*.cmake"):
        text = path.read_text()
        fixed = text
        for pattern, replacement in replacements:
            fixed = pattern.sub(replacement, fixed)
        if fixed != text:
            path.write_text(fixed)
            changed += 1
    return changed


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    print(f"fixed include paths in {fix_prefix(pathlib.Path(sys.argv[1]))} CMake files")
