"""Data-parallel updates over ``torch.distributed`` (gloo, CPU): every rank collects its own rollouts or batches,
gradients are averaged across ranks before each optimiser step, so parameters stay identical everywhere.

Started by ``torchrun --nproc_per_node N python -m rlvla_ros.training run ...`` (which sets ``RANK``,
``WORLD_SIZE``, ``MASTER_ADDR``/``MASTER_PORT``); in a plain process every helper is a no-op. This is what
``DistributedDataParallel`` does, written out so it works for any head a trainer calls (DDP only hooks
``forward()``). Rollout workers on other hosts are not processes of this group: they are the live ROS graph
(sim_bridge or real arms + policy nodes on any host of the DDS domain) feeding the ``graph`` rollout source.
"""

from __future__ import annotations

import math
import os

import numpy as np
import torch
import torch.distributed as dist
from torch import nn


def init_from_environment() -> bool:
    """Join the process group torchrun describes (gloo backend); False when not started by a launcher."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return False
    if not dist.is_initialized():
        dist.init_process_group(backend="gloo")
    return True


def is_distributed() -> bool:
    """Whether a process group of more than one rank is active."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    """This process's rank (0 without a process group)."""
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    """Number of ranks (1 without a process group)."""
    return dist.get_world_size() if is_distributed() else 1


def broadcast_parameters(module: nn.Module) -> None:
    """Copy rank 0's trainable parameters to every rank (call once before training)."""
    if not is_distributed():
        return
    for parameter in module.parameters():
        if parameter.requires_grad:
            dist.broadcast(parameter.data, src=0)


def average_gradients(module: nn.Module) -> None:
    """All-reduce (mean) the gradients of the trainable parameters; a missing gradient counts as zero."""
    if not is_distributed():
        return
    size = float(dist.get_world_size())
    for parameter in module.parameters():
        if not parameter.requires_grad:
            continue
        if parameter.grad is None:
            parameter.grad = torch.zeros_like(parameter)
        dist.all_reduce(parameter.grad, op=dist.ReduceOp.SUM)
        parameter.grad /= size


def all_mean(values: dict[str, float]) -> dict[str, float]:
    """Average scalar metrics over ranks (same keys on every rank)."""
    if not is_distributed() or not values:
        return dict(values)
    keys = sorted(values)
    tensor = torch.tensor([values[k] for k in keys], dtype=torch.float64)
    dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    tensor /= dist.get_world_size()
    return dict(zip(keys, tensor.tolist()))


def agree_max(value: int) -> int:
    """The largest ``value`` over ranks (so every rank runs the same number of collective steps)."""
    if not is_distributed():
        return value
    tensor = torch.tensor([value], dtype=torch.int64)
    dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
    return int(tensor.item())


def minibatch_indices(size: int, minibatch_size: int, rng: np.random.Generator) -> list[np.ndarray]:
    """One epoch of shuffled minibatches of ``range(size)``; the count is agreed over ranks (ranks with fewer
    items revisit some), since every minibatch is a gradient all-reduce. Empty when no rank has items."""
    count = agree_max(math.ceil(size / minibatch_size))
    if count == 0 or size == 0:
        return [np.zeros(0, dtype=np.int64)] * count
    order = rng.permutation(size)
    if size < count:
        order = np.concatenate([order, rng.integers(0, size, count - size)])
    return np.array_split(order, count)


def optimizer_step(
    module: nn.Module, optimizer: torch.optim.Optimizer, loss: torch.Tensor, max_grad_norm: float
) -> float:
    """Backward, average gradients over ranks, clip to ``max_grad_norm`` (<= 0: no clipping), step.

    Returns the gradient norm before clipping."""
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    average_gradients(module)
    params = [p for p in module.parameters() if p.requires_grad and p.grad is not None]
    if max_grad_norm > 0:
        norm = torch.nn.utils.clip_grad_norm_(params, max_grad_norm)
    else:
        norm = torch.linalg.vector_norm(torch.stack([p.grad.detach().norm() for p in params]))
    optimizer.step()
    return float(norm)
