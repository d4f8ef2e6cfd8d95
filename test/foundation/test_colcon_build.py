"""The package builds with colcon in a fresh workspace, as on a ROS 2 install, and the result imports."""

import os
import pathlib
import shutil
import subprocess
import sys

REPO = pathlib.Path(__file__).resolve().parents[2]
PACKAGE_FILES = ["package.xml", "CMakeLists.txt", "setup.py", "msg", "srv", "action", "rlvla_ros", "launch", "config"]


def test_colcon_build_installs_interfaces_sources_and_node_executables(tmp_path):
    source = tmp_path / "src" / "rlvla_ros"
    source.mkdir(parents=True)
    for name in PACKAGE_FILES:
        path = REPO / name
        if path.is_dir():
            shutil.copytree(path, source / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(path, source / name)
    build = subprocess.run(
        [sys.executable, "-m", "colcon", "build", "--event-handlers", "console_direct-",
         "--cmake-args", f"-DPython3_EXECUTABLE={sys.executable}", "-DBUILD_TESTING=OFF"],
        cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]

    install = tmp_path / "install" / "rlvla_ros"
    site_packages = install / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages"
    assert (install / "share" / "rlvla_ros" / "package.xml").is_file()
    assert (site_packages / "rlvla_ros" / "cli" / "doctor.py").is_file()
    for node_module in (REPO / "rlvla_ros" / "nodes").glob("*.py"):
        if node_module.stem != "__init__":
            assert os.access(install / "lib" / "rlvla_ros" / node_module.stem, os.X_OK)

    # The colcon install comes first on the path, as after `source install/setup.bash`: code and interfaces must
    # both resolve there.
    environment = {**os.environ, "PYTHONPATH": str(site_packages),
                   "AMENT_PREFIX_PATH": f"{install}:{sys.prefix}",
                   "LD_LIBRARY_PATH": f"{install / 'lib'}:{os.environ.get('LD_LIBRARY_PATH', '')}"}
    probe = ("import rlvla_ros.cli.doctor, rlvla_ros.msg, rlvla_ros.srv, rlvla_ros.action;"
             "from rlvla_ros.action import FineTune; from rlvla_ros.msg import Observation;"
             "print(rlvla_ros.cli.doctor.__file__); print(rlvla_ros.msg.__file__); print(rlvla_ros.action.__file__)")
    result = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, env=environment,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    resolved = result.stdout.split()
    assert len(resolved) == 3 and all(path.startswith(str(site_packages / "rlvla_ros")) for path in resolved), resolved
