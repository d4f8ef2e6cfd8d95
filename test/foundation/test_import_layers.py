"""The subpackages of rlvla_ros import one way, down this order (docs/architecture.md says why), and the ROS-free core
imports no ROS.

Every ``import`` and ``from ... import`` of every module is read from its syntax tree, function-local ones included,
so a lazy import cannot hide an edge. A package may import only packages of a lower rank; packages that share a rank
do not import each other.
"""

import ast
import pathlib

import pytest

PACKAGE = pathlib.Path(__file__).resolve().parents[2] / "rlvla_ros"
LAYERS = [
    ("contract",),             # names, codes, seed ranges: no torch, no MuJoCo
    ("data", "policies"),      # episodes and bags; models
    ("sim",),                  # MuJoCo scenes, tasks, experts, the Gymnasium env
    ("safety", "rewards"),     # the action filter on the simulator's kinematics; success classifier, episode book
    ("envs",),                 # Gymnasium envs by task name (the Panda's acts through the safety filter)
    ("rollouts",),             # simulated episodes, workers, evaluation, distributed helpers, curves, statistics
    ("algorithms",),           # trainers
    ("training",),             # jobs, recipes, experiments
    ("ros",),                  # rclpy helpers, the graph rollout source
    ("nodes", "launching"),    # one node per file; the pip-only launch runner
    ("graph_bench",),          # benchmarks and fuzzing of a launched graph
    ("cli",),                  # the rlvla command
]
RANK = {package: rank for rank, packages in enumerate(LAYERS) for package in packages}
CORE = {package for package, rank in RANK.items() if rank <= RANK["training"]}
INTERFACES = ("msg", "srv", "action")
"""rlvla_ros's generated ROS interfaces: the ROS edge may import them, the core may not."""
ROS_PREFIXES = ("rclpy", "rcl_interfaces", "builtin_interfaces", "std_srvs", "rosidl", "launch", "moveit")


def is_ros(module: str) -> bool:
    """A ROS client library or message package (ament_index_python, a file lookup, and rosbags, a pure-Python bag
    reader, are not: they need no middleware)."""
    top = module.split(".")[0]
    return top.startswith(ROS_PREFIXES) or top.endswith(("_msgs", "_srvs", "_interfaces")) or (
        module.startswith("rlvla_ros.") and module.split(".")[1] in INTERFACES)


def module_name(path: pathlib.Path, package: pathlib.Path = PACKAGE) -> str:
    parts = path.relative_to(package.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: pathlib.Path, package: pathlib.Path = PACKAGE) -> list[tuple[int, str]]:
    """(line, imported module) of every import statement in the file, relative ones resolved."""
    name = module_name(path, package)
    parent = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = parent.split(".")[: len(parent.split(".")) - node.level + 1]
                base = ".".join(anchor + ([node.module] if node.module else []))
            found.append((node.lineno, base))
            # `from rlvla_ros import sim` imports the subpackage sim
            if base == "rlvla_ros":
                found += [(node.lineno, f"rlvla_ros.{alias.name}") for alias in node.names]
    return found


def layer_of(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "rlvla_ros" and parts[1] not in INTERFACES else None


MODULES = sorted(PACKAGE.rglob("*.py"))


def test_every_subpackage_has_a_layer():
    packages = {layer_of(module_name(path)) for path in MODULES} - {None}
    assert packages == set(RANK), f"packages without a layer: {sorted(packages - set(RANK))}; layers without a " \
                                  f"package: {sorted(set(RANK) - packages)}"


@pytest.mark.parametrize("path", MODULES, ids=lambda path: module_name(path))
def test_imports_run_down_the_layers_and_the_core_imports_no_ros(path):
    importer = layer_of(module_name(path))
    if importer is None:
        return  # rlvla_ros/__init__.py
    wrong = []
    for line, module in imports(path):
        if importer in CORE and is_ros(module):
            wrong.append(f"line {line}: {module} is ROS, and {importer} is in the ROS-free core")
        imported = layer_of(module)
        if imported is not None and imported != importer and RANK[imported] >= RANK[importer]:
            wrong.append(f"line {line}: {module} is {imported} (layer {RANK[imported]}), not below {importer} "
                         f"(layer {RANK[importer]})")
    assert not wrong, f"{path.relative_to(PACKAGE.parent)}:\n" + "\n".join(wrong)


def test_the_checker_sees_function_local_and_relative_imports(tmp_path):
    source = tmp_path / "rlvla_ros" / "sim" / "probe.py"
    source.parent.mkdir(parents=True)
    source.write_text("def late():\n    from ..algorithms import ppo\n    import rclpy\n")
    assert imports(source, tmp_path / "rlvla_ros") == [(2, "rlvla_ros.algorithms"), (3, "rclpy")]
    assert is_ros("geometry_msgs.msg") and is_ros("rlvla_ros.srv") and not is_ros("rosbags.typesys")
