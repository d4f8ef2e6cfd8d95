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
