"""Node configs are dataclasses declared as described, typed ROS parameters and validated once."""

import dataclasses

import pytest
import rclpy
from rclpy.parameter import Parameter

from rlvla_ros.ros.parameters import declare_config


@dataclasses.dataclass
class ExampleConfig:
    rate_hz: float = dataclasses.field(default=10.0, metadata={"description": "control rate"})
    horizon: int = dataclasses.field(default=4, metadata={"description": "steps per chunk"})
    camera_names: list[str] = dataclasses.field(default_factory=list, metadata={"description": "cameras"})
    dry_run: bool = dataclasses.field(default=True, metadata={"description": "log, do not send"})

    def __post_init__(self):
        if self.rate_hz <= 0:
            raise ValueError(f"rate_hz must be > 0, got {self.rate_hz}")


def make_node(ros_graph, overrides):
    return ros_graph.add(rclpy.create_node("configured", context=ros_graph.context, parameter_overrides=overrides))


def test_defaults_are_declared_with_descriptions(ros_graph):
    node = make_node(ros_graph, [])
    config = declare_config(node, ExampleConfig)
    assert config == ExampleConfig()
    assert node.describe_parameter("rate_hz").description == "control rate"
    assert node.describe_parameter("camera_names").type == Parameter.Type.STRING_ARRAY.value


def test_overrides_from_a_parameter_file_are_used_and_integers_widen_to_float(ros_graph):
    node = make_node(ros_graph, [Parameter("rate_hz", value=20), Parameter("camera_names", value=["front", "wrist"]),
                                 Parameter("dry_run", value=False)])
    config = declare_config(node, ExampleConfig)
    assert config.rate_hz == 20.0 and isinstance(config.rate_hz, float)
    assert config.camera_names == ["front", "wrist"]
    assert config.dry_run is False


def test_invalid_value_names_the_node_and_the_parameter(ros_graph):
    node = make_node(ros_graph, [Parameter("rate_hz", value=-1.0)])
    with pytest.raises(ValueError, match="node 'configured': invalid parameters: rate_hz must be > 0"):
        declare_config(node, ExampleConfig)


def test_a_string_for_a_float_parameter_is_refused_by_name(ros_graph):
    node = make_node(ros_graph, [Parameter("rate_hz", value="fast")])
    with pytest.raises(ValueError, match="parameter 'rate_hz' must be a number, got 'fast'"):
        declare_config(node, ExampleConfig)


def set_remotely(ros_graph, wait_for, node_name, **parameters):
    """Set parameters through the node's parameter service, as `ros2 param set` does; one result per parameter."""
    from rclpy.parameter_client import AsyncParameterClient

    client = AsyncParameterClient(ros_graph.node(f"{node_name}_setter"), node_name)
    assert client.wait_for_services(timeout_sec=10.0)
    future = client.set_parameters([Parameter(name, value=value) for name, value in parameters.items()])
    assert wait_for(future.done, 10.0)
    return future.result().results


def test_a_run_time_field_is_validated_like_at_start_up_then_applied(ros_graph, wait_for):
    node = make_node(ros_graph, [])
    applied = []
    config = declare_config(node, ExampleConfig, apply=applied.append, runtime=("rate_hz",))
    assert config == ExampleConfig() and applied == []
    (result,) = set_remotely(ros_graph, wait_for, "configured", rate_hz=25)
    assert result.successful and applied == [ExampleConfig(rate_hz=25.0)]
    (result,) = set_remotely(ros_graph, wait_for, "configured", rate_hz=-1.0)
    assert not result.successful and result.reason == "invalid parameters: rate_hz must be > 0, got -1.0"
    (result,) = set_remotely(ros_graph, wait_for, "configured", rate_hz="fast")
    assert not result.successful and "parameter 'rate_hz' must be a number, got 'fast'" in result.reason
    assert node.get_parameter("rate_hz").value == 25 and len(applied) == 1


def test_a_change_the_node_cannot_apply_is_refused_with_the_reason_and_leaves_the_value(ros_graph, wait_for):
    node = make_node(ros_graph, [])
    declare_config(node, ExampleConfig, apply=lambda config: None, runtime=("rate_hz",))
    (result,) = set_remotely(ros_graph, wait_for, "configured", horizon=8)
    assert not result.successful
    assert result.reason == ("parameter(s) horizon are read at start-up only: node 'configured' cannot apply a "
                             "change while running (restart it with the new value)")
    assert node.get_parameter("horizon").value == 4


def test_apply_may_refuse_and_a_failure_in_it_is_a_refusal(ros_graph, wait_for):
    node = make_node(ros_graph, [])

    def apply(config):
        if config.rate_hz > 100:
            raise ValueError("the driver cannot go faster than 100 Hz")
        if config.rate_hz == 42:
            raise OSError("device busy")

    declare_config(node, ExampleConfig, apply=apply, runtime=("rate_hz",))
    (result,) = set_remotely(ros_graph, wait_for, "configured", rate_hz=200.0)
    assert not result.successful and result.reason == "invalid parameters: the driver cannot go faster than 100 Hz"
    (result,) = set_remotely(ros_graph, wait_for, "configured", rate_hz=42.0)
    assert not result.successful and result.reason == "cannot apply ['rate_hz']: OSError: device busy"
    assert node.get_parameter("rate_hz").value == 10.0


def test_nodes_without_run_time_parameters_refuse_every_change_of_their_config(ros_graph, wait_for):
    # Issue 17: changes were answered "Set parameter successful" and silently ignored.
    from rlvla_ros.nodes.episode_manager import EpisodeManager

    node = ros_graph.add(EpisodeManager(context=ros_graph.context))
    (result,) = set_remotely(ros_graph, wait_for, "episode_manager", max_steps=[5])
    assert not result.successful and "max_steps are read at start-up only" in result.reason
    assert list(node.get_parameter("max_steps").value) == [50] and node.config.max_steps == [50]
    (result,) = set_remotely(ros_graph, wait_for, "episode_manager", use_sim_time=False)  # not ours: left to rclpy
    assert result.successful
