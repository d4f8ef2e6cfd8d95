"""Online RL of every VLA family through the learner service: token log-probs (token_vla, hf_vlm with LoRA),
Flow-Noise and DSRL (flow_matching), each from a start checkpoint, on in-process simulated rollouts; the result
loads into a running policy node."""

import pytest
import torch
from rclpy.parameter import Parameter

from rlvla_ros.msg import FineTuneStatus
from rlvla_ros.nodes.policy import PolicyNode
from rlvla_ros.policies import (
    FlowMatchingConfig,
    FlowMatchingPolicy,
    HfVlmConfig,
    HfVlmPolicy,
    TokenVla,
    TokenVlaConfig,
    load_policy,
)
from rlvla_ros.policies.hf_vlm import build_tiny_vlm
from rlvla_ros.srv import LoadCheckpoint

from .test_learner_node import SUCCEEDED, Client, make_learner

SIZE = 32
COMMON = "init_checkpoint: %s, minibatch_size: 16, eval_episodes: 1, num_envs: 2"
BATCH = {"grpo": "group_size: 2, groups_per_iteration: 1, max_sampling_rounds: 1", "ppo": "episodes_per_iteration: 2",
         "dsrl": "episodes_per_iteration: 2"}


@pytest.fixture(scope="module")
def starts(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("starts")
    torch.manual_seed(0)
    policies = {
        "token_vla": TokenVla(TokenVlaConfig(image_size=SIZE, vision_hidden_size=32, vision_layers=1, vision_heads=2,
                                             vision_intermediate_size=64, hidden_size=64, num_layers=2, num_heads=2,
                                             num_kv_heads=1, intermediate_size=128, value_hidden_size=32)),
        "hf_vlm": HfVlmPolicy(HfVlmConfig(base_model_dir=str(build_tiny_vlm("idefics3", root / "idefics3")),
                                          image_size=SIZE, decoding="parallel")),
        "flow_matching": FlowMatchingPolicy(FlowMatchingConfig(image_size=SIZE, channels=[8, 8], strides=[2, 1],
                                                               expert_hidden_size=32, num_steps=4,
                                                               head_hidden_size=32)),
    }
    for name, policy in policies.items():
        policy.save_pretrained(root / name)
    return {name: root / name for name in policies}


@pytest.mark.parametrize(("algorithm", "family"), [
    ("ppo", "token_vla"), ("grpo", "hf_vlm"), ("ppo", "hf_vlm"), ("ppo", "flow_matching"), ("dsrl", "flow_matching"),
])
def test_the_learner_fine_tunes_each_family_online_and_the_policy_node_loads_the_result(
        ros_graph, wait_for, tmp_path, starts, algorithm, family):
    policy = ros_graph.add(PolicyNode(context=ros_graph.context, parameter_overrides=[
        Parameter("checkpoint", value=str(starts[family])), Parameter("horizon", value=4)]))
    make_learner(ros_graph, tmp_path / "runs")
    client = Client(ros_graph, wait_for, fake_policy=False)
    response = client.start(algorithm, steps=2, overrides=f"{{{COMMON % starts[family]}, {BATCH[algorithm]}}}")
    assert response.accepted, response.message
    status = client.wait_state({SUCCEEDED}, timeout_s=300.0)
    assert status.step == 2 and {m.name for m in status.metrics} >= {"policy_loss", "rollout/success_rate"}
    trained, start = load_policy(status.latest_checkpoint), load_policy(starts[family])
    assert type(trained) is type(start)
    changed = [name for name, tensor in trained.checkpoint_state_dict().items()
               if not torch.equal(tensor, start.checkpoint_state_dict()[name])]
    # GRPO updates only on groups with both outcomes, which an untrained policy does not produce here; PPO's and
    # DSRL's critics learn from any return.
    assert bool(changed) == (algorithm != "grpo"), changed
    load = client.node.create_client(LoadCheckpoint, "policy/load_checkpoint")
    answer = client.call(load, LoadCheckpoint.Request(path=status.latest_checkpoint))
    assert answer.success, answer.message
    assert policy._version >= 1
    assert status.state == FineTuneStatus.STATE_SUCCEEDED
