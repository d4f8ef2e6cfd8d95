"""Fuzz the running sim graph: hundreds of malformed requests, messages and parameter changes from hypothesis.

:func:`fuzz_sim_graph` launches ``sim.launch.yaml`` (the real nodes as processes, over real topics), watches the arm
and gripper commands with an independent :class:`~rlvla_ros.graph_bench.command_monitor.CommandMonitor`, sends a seeded
sample of :func:`~rlvla_ros.graph_bench.fuzz_cases.graph_cases`, then checks that every node still answers and none died.
:class:`FuzzReport` counts cases, bad replies (a malformed request accepted, or answered without a reason, or not
answered), crashes and unsafe commands. ``rlvla bench fuzz --json`` runs a longer sample; test/fuzz a bounded one.
"""

from __future__ import annotations

import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import rclpy
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import seed as hypothesis_seed
from rcl_interfaces.msg import Parameter
from rcl_interfaces.srv import GetParameters, SetParameters
from rclpy.parameter import parameter_value_to_python as parameter_value

from rlvla_ros.graph_bench.command_monitor import CommandMonitor
from rlvla_ros.graph_bench.fuzz_cases import REPEAT_PERIOD_S, MessageCase, ParameterCase, ServiceCase, graph_cases
from rlvla_ros.launching.background import BackgroundLaunch
from rlvla_ros.ros.in_process import in_process_graph, wait_until
from rlvla_ros.ros.param_files import package_config_dir, write_config_overlay
from rlvla_ros.ros.qos import EPISODE_EVENT_QOS, INSTRUCTION_QOS
from rlvla_ros.safety.robot_config import load_robot_config
from rlvla_ros.srv import StartFineTune, StopFineTune

NAMESPACE = "/fuzz"
REPLY_TIMEOUT_S = 30.0
"""A request not answered within this counts as a bad reply (a node that hangs is as bad as one that dies)."""
STARTUP_TIMEOUT_S = 240.0
LATCHED_TOPICS = {"episode_event": EPISODE_EVENT_QOS, "instruction": INSTRUCTION_QOS}
"""Topics whose subscribers want transient-local publishers (others take the default QoS)."""


@dataclass
class FuzzReport:
    """What a fuzz run found; :meth:`summary` is its JSON."""

    cases: Counter = field(default_factory=Counter)
    """Cases sent, by kind (service, parameter, message)."""
    bad_replies: list[str] = field(default_factory=list)
    crashes: list[str] = field(default_factory=list)
    unsafe_commands: list[str] = field(default_factory=list)
    commands_checked: int = 0

    def summary(self) -> dict[str, Any]:
        return {
            "cases": sum(self.cases.values()), "cases_by_kind": dict(self.cases),
            "crashes": len(self.crashes), "unsafe_commands": len(self.unsafe_commands),
            "bad_replies": len(self.bad_replies),
            "bad_replies_by_target": dict(Counter(reply.split(" ", 1)[0] for reply in self.bad_replies)),
            "commands_checked": self.commands_checked,
            "examples": {"crashes": self.crashes[:5], "unsafe_commands": self.unsafe_commands[:5],
                         "bad_replies": self.bad_replies[:10]},
        }


def node_configs() -> dict[str, type]:
    """Node name -> parameter dataclass of every node in the sim graph."""
    from rlvla_ros.nodes.episode_manager import EpisodeManagerConfig
    from rlvla_ros.nodes.learner import LearnerConfig
    from rlvla_ros.nodes.perception import PerceptionConfig
    from rlvla_ros.nodes.policy import PolicyNodeConfig
    from rlvla_ros.nodes.reward import RewardConfig
    from rlvla_ros.nodes.safety_filter import SafetyFilterConfig
    from rlvla_ros.nodes.sim_bridge import SimBridgeConfig

    return {"sim_bridge": SimBridgeConfig, "perception": PerceptionConfig, "policy": PolicyNodeConfig,
            "safety_filter": SafetyFilterConfig, "reward": RewardConfig, "episode_manager": EpisodeManagerConfig,
            "learner": LearnerConfig}


class GraphFuzzer:
    """Sends cases into the graph under ``namespace`` from ``node`` and records bad replies in ``report``."""

    def __init__(self, node, namespace: str, report: FuzzReport) -> None:
        self.node, self.namespace, self.report = node, namespace.rstrip("/"), report
        self._clients: dict[tuple[str, Any], Any] = {}
        self._publishers: dict[tuple[str, Any], Any] = {}

    def run(self, case: ServiceCase | ParameterCase | MessageCase) -> None:
        if isinstance(case, ServiceCase):
            self.report.cases["service"] += 1
            self._check_service(case)
        elif isinstance(case, ParameterCase):
            self.report.cases["parameter"] += 1
            self._check_parameter(case)
        else:
            self.report.cases["message"] += 1
            self._publish(case)

    def _publish(self, case: MessageCase) -> None:
        key = (case.topic, case.msg_type)
        if key not in self._publishers:
            self._publishers[key] = self.node.create_publisher(
                case.msg_type, f"{self.namespace}/{case.topic}", LATCHED_TOPICS.get(case.topic, 10))
        for index in range(case.repeats):
            if index:
                time.sleep(REPEAT_PERIOD_S)  # pacing a stream, not waiting for an outcome
            self._publishers[key].publish(case.message)
        if case.follow_up is not None:
            self._publish(case.follow_up)

    def call(self, service: str, srv_type: Any, request: Any) -> Any | None:
        """The response of ``service`` (relative to the namespace), None when it did not answer in time."""
        key = (service, srv_type)
        if key not in self._clients:
            self._clients[key] = self.node.create_client(srv_type, f"{self.namespace}/{service}")
        client = self._clients[key]
        if not client.wait_for_service(timeout_sec=REPLY_TIMEOUT_S):
            return None
        future = client.call_async(request)
        if not wait_until(future.done, REPLY_TIMEOUT_S):
            client.remove_pending_request(future)
            return None
        return future.result()

    def _check_service(self, case: ServiceCase) -> None:
        response = self.call(case.service, case.srv_type, case.request)
        if response is None:
            self._bad(case.service, case.request, "no answer")
            return
        granted = response.accepted if case.srv_type is StartFineTune else response.success
        if granted:
            self._bad(case.service, case.request, f"accepted: {response.message}")
            if case.srv_type is StartFineTune:
                self.call("learner/stop_finetune", StopFineTune, StopFineTune.Request())
        elif not response.message.strip():
            self._bad(case.service, case.request, "refused without a reason")

    def _check_parameter(self, case: ParameterCase) -> None:
        response = self.call(f"{case.node}/set_parameters", SetParameters,
                             SetParameters.Request(parameters=[case.parameter]))
        what = f"{case.node}/set_parameters"
        if response is None:
            self._bad(what, case.parameter, "no answer")
        elif len(response.results) != 1:
            self._bad(what, case.parameter, f"{len(response.results)} results for one parameter")
        elif response.results[0].successful:
            self._bad(what, case.parameter, "accepted")
        elif not response.results[0].reason.strip():
            self._bad(what, case.parameter, "refused without a reason")

    def _bad(self, what: str, request: Any, problem: str) -> None:
        self.report.bad_replies.append(f"{what} {_short(request)}: {problem}")

    def nodes_not_answering(self, nodes: list[str], timeout_s: float = REPLY_TIMEOUT_S) -> list[str]:
        """The nodes whose ``~/get_parameters`` does not answer (within ``timeout_s`` each)."""
        silent = []
        for name in nodes:
            client = self.node.create_client(GetParameters, f"{self.namespace}/{name}/get_parameters")
            try:
                if not client.wait_for_service(timeout_sec=timeout_s):
                    silent.append(name)
                    continue
                future = client.call_async(GetParameters.Request(names=["use_sim_time"]))
                if not wait_until(future.done, timeout_s):
                    silent.append(name)
            finally:
                self.node.destroy_client(client)
        return silent


def _short(value: Any, limit: int = 300) -> str:
    if isinstance(value, Parameter):
        text = f"{value.name} := {parameter_value(value.value)!r}"
    else:
        text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


def fuzz_sim_graph(cases: int = 200, seed: int = 0, work_dir: str | Path | None = None) -> FuzzReport:
    """Launch the sim graph, send ``cases`` generated cases (reproducible from ``seed``), return the report."""
    with tempfile.TemporaryDirectory(prefix="rlvla_fuzz_") as tmp:
        work = Path(work_dir or tmp)
        (work / "data").mkdir(parents=True, exist_ok=True)
        (work / "launch.log").unlink(missing_ok=True)  # the launch appends: only this run's lines count
        # 64 px images keep the graph light; every other value is the package's.
        config_dir = write_config_overlay(work / "config", {
            "sim_bridge": {"image_size": 64}, "perception": {"image_size": 64}, "policy": {"image_size": 64}})
        launch = BackgroundLaunch(package_config_dir().parent / "launch" / "sim.launch.yaml", {
            "namespace": NAMESPACE.strip("/"), "config_dir": str(config_dir),
            "learner_output_dir": str(work / "learner"), "data_root": str(work / "data")}, work / "launch.log")
        robot = load_robot_config(config_dir / "robots" / "tabletop_sim.yaml")
        report = FuzzReport()
        configs = node_configs()
        with launch, in_process_graph() as (context, executor):
            node = rclpy.create_node("graph_fuzzer", context=context)
            executor.add_node(node)
            monitor = CommandMonitor(node, robot, NAMESPACE)
            fuzzer = GraphFuzzer(node, NAMESPACE, report)
            down = fuzzer.nodes_not_answering(sorted(configs), timeout_s=STARTUP_TIMEOUT_S)
            if down:
                raise RuntimeError(f"the sim graph did not come up ({down} silent):\n{launch.log_tail()}")
            if not wait_until(lambda: monitor.commands > 0, STARTUP_TIMEOUT_S):
                raise RuntimeError(f"the sim graph sent no arm command:\n{launch.log_tail()}")

            @hypothesis_seed(seed)
            @settings(max_examples=cases, database=None, deadline=None, phases=[Phase.generate],
                      suppress_health_check=list(HealthCheck), print_blob=False)
            @given(graph_cases(configs))
            def send(case) -> None:
                fuzzer.run(case)

            send()
            # Sentinel: every node still answers, so every message sent before has been taken (or refused) by now.
            report.crashes.extend(f"{name} does not answer" for name in fuzzer.nodes_not_answering(sorted(configs)))
            report.crashes.extend(line for line in launch.log_path.read_text(errors="replace").splitlines()
                                  if "process has died" in line or "finished cleanly" in line)
            report.commands_checked = monitor.commands
            report.unsafe_commands.extend(monitor.violations)
            executor.remove_node(node)
            node.destroy_node()
    return report


def benchmark_fuzz(cases: int = 1000, seed: int = 0) -> dict[str, Any]:
    """`rlvla bench fuzz`: a longer seeded sample; cases, crashes and unsafe commands (must be 0 and 0)."""
    started_s = time.monotonic()
    summary = fuzz_sim_graph(cases, seed).summary()
    return {"seed": seed, **summary, "seconds": round(time.monotonic() - started_s, 1)}
