"""Run one fine-tuning job without ROS, in this process or data-parallel under torchrun.

    python -m rlvla_ros.training --algorithm bc --dataset demos/ --steps 500 --output-dir runs/bc
    torchrun --nproc_per_node 2 -m rlvla_ros.training --algorithm grpo --overrides '{init_checkpoint: runs/bc/latest}' \\
        --output-dir runs/grpo

Under torchrun every rank trains on its own batches or rollouts with gradients averaged across ranks; rank 0 alone
writes checkpoints, TensorBoard, curves and metrics. ``--print-params-digest`` prints each rank's digest of its
trainable parameters at the end (ranks agree when the update is synchronised).
"""

from __future__ import annotations

import argparse
import hashlib
import json
from collections.abc import Sequence
from pathlib import Path

import torch

from rlvla_ros.rollouts import distributed
from rlvla_ros.training.jobs import JobRequest, prepare_job, run_job


def parameters_digest(module: torch.nn.Module) -> str:
    """SHA-256 of the trainable parameters' bytes, in registration order."""
    digest = hashlib.sha256()
    for parameter in module.parameters():
        if parameter.requires_grad:
            digest.update(parameter.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def _print_progress(step: int, metrics: dict[str, float]) -> None:
    shown = ", ".join(f"{name} {value:.4g}" for name, value in metrics.items())
    print(f"step {step}: {shown}", flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rlvla_ros.training", description=__doc__.splitlines()[0])
    parser.add_argument("--algorithm", required=True)
    parser.add_argument("--dataset", action="append", default=[], help="bag or folder of bags (repeatable)")
    parser.add_argument("--steps", type=int, default=0, help="0: the algorithm's default")
    parser.add_argument("--overrides", default="", help="YAML mapping of config overrides")
    parser.add_argument("--output-dir", required=True)
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads per process")
    parser.add_argument("--print-params-digest", action="store_true")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    distributed.init_from_environment()
    request = JobRequest(args.algorithm, args.dataset, args.steps, args.overrides)
    trainer, context = prepare_job(request, Path(args.output_dir), write_files=distributed.rank() == 0)
    if distributed.rank() == 0:
        context.on_progress = _print_progress
    metrics = run_job(trainer, context)
    if distributed.rank() == 0:
        print(json.dumps({"final_metrics": metrics, "output_dir": str(context.output_dir)}))
    if args.print_params_digest:
        print(f"rank {distributed.rank()} params {parameters_digest(context.policy)}", flush=True)
    if distributed.is_distributed():
        torch.distributed.destroy_process_group()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
