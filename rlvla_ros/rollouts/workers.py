"""Simulated rollouts spread over worker processes: :class:`SimRollouts` on several CPU cores.

Each :meth:`ParallelSimRollouts.run` splits its specs into contiguous shares: this process runs the first while
``workers`` spawned processes, each with its own environments, run the others. Before every run the workers get the
policy's current trainable parameters and buffers (its frozen weights, e.g. a frozen encoder or text model, are
loaded once, from the start policy saved with ``save_pretrained``), so every share samples from the same policy.
Episodes come back in ``specs`` order, as from one :class:`SimRollouts`.
"""

from __future__ import annotations

import multiprocessing
import shutil
import tempfile
import traceback
from collections.abc import Sequence
from multiprocessing.connection import Connection

import numpy as np
import torch

from rlvla_ros.data.episodes import EpisodeRecord
from rlvla_ros.policies import Policy
from rlvla_ros.rollouts.sim_rollouts import ChooseChunk, EpisodeSpec, SimRollouts

STARTUP_TIMEOUT_S = 300.0
"""A worker that is not ready (imports, policy loaded, renderers made) within this time is an error."""


def changing_state(policy: Policy) -> dict[str, np.ndarray]:
    """The weights an update can change: parameters that require grad, and every buffer."""
    names = {name for name, parameter in policy.named_parameters() if parameter.requires_grad}
    names |= {name for name, _ in policy.named_buffers()}
    return {name: tensor.detach().cpu().numpy().copy() for name, tensor in policy.state_dict().items()
            if name in names}


class ParallelSimRollouts:
    """:class:`SimRollouts` here plus ``workers`` processes; ``policy`` is the start policy the workers load."""

    def __init__(self, policy: Policy, num_envs: int, image_size: int, workers: int, seed: int = 0,
                 reward_mode: str = "sparse") -> None:
        if workers < 1:
            raise ValueError(f"workers must be >= 1 (use SimRollouts for none), got {workers}")
        self.local = SimRollouts(num_envs, image_size, reward_mode=reward_mode)
        self._connections: list[Connection] = []
        self._processes: list[multiprocessing.Process] = []
        policy_dir = tempfile.mkdtemp(prefix="rlvla-rollout-policy-")
        context = multiprocessing.get_context("spawn")  # no fork: torch threads and GL contexts do not survive it
        try:
            policy.save_pretrained(policy_dir)
            for index in range(1, workers + 1):
                parent, child = context.Pipe()
                process = context.Process(
                    target=_worker_main,
                    args=(child, policy_dir, num_envs, image_size, index, seed + index, reward_mode),
                    name=f"rlvla-rollout-worker-{index}", daemon=True)
                process.start()
                child.close()
                self._connections.append(parent)
                self._processes.append(process)
            for index in range(workers):
                self._receive(index, timeout_s=STARTUP_TIMEOUT_S)
        except BaseException:
            self.close()
            raise
        finally:
            shutil.rmtree(policy_dir, ignore_errors=True)

    @property
    def workers(self) -> int:
        return len(self._connections)

    def run(
        self,
        policy: Policy,
        specs: Sequence[EpisodeSpec],
        *,
        deterministic: bool = False,
        temperature: float = 1.0,
        choose_chunk: ChooseChunk | None = None,
    ) -> list[EpisodeRecord]:
        """As :meth:`SimRollouts.run`; a ``choose_chunk`` hook (a local closure) keeps every spec in this process."""
        if choose_chunk is not None:
            return self.local.run(policy, specs, deterministic=deterministic, temperature=temperature,
                                  choose_chunk=choose_chunk)
        shares = [list(share) for share in np.array_split(np.arange(len(specs)), self.workers + 1)]
        options = {"deterministic": deterministic, "temperature": temperature}
        state = changing_state(policy)
        busy = []
        for index, share in enumerate(shares[1:]):
            if share:
                self._connections[index].send((state, policy.training, [specs[i] for i in share], options))
                busy.append(index)
        replies: list[list[EpisodeRecord] | RuntimeError] = []
        try:
            episodes = self.local.run(policy, [specs[i] for i in shares[0]], **options)
        finally:
            # Every busy worker's reply is read, even when this share or another worker failed: a reply left in its
            # pipe would be taken for the next run's episodes.
            for index in busy:
                try:
                    replies.append(self._receive(index))
                except RuntimeError as error:
                    replies.append(error)
        for reply in replies:
            if isinstance(reply, RuntimeError):
                raise reply
            episodes += reply
        return episodes

    def close(self) -> None:
        """Stop the workers and release every renderer."""
        for connection in self._connections:
            try:
                connection.send(None)
            except (BrokenPipeError, OSError):
                pass
        for process in self._processes:
            process.join(timeout=10.0)
            if process.is_alive():
                process.terminate()
        for connection in self._connections:
            connection.close()
        self._connections, self._processes = [], []
        self.local.close()

    def _receive(self, index: int, timeout_s: float | None = None):
        connection, process = self._connections[index], self._processes[index]
        if timeout_s is not None and not connection.poll(timeout_s):
            raise RuntimeError(f"rollout worker {index + 1} was not ready after {timeout_s:.0f} s")
        try:
            kind, payload = connection.recv()
        except EOFError:
            raise RuntimeError(f"rollout worker {index + 1} exited (exit code {process.exitcode})") from None
        if kind == "error":
            raise RuntimeError(f"rollout worker {index + 1} failed:\n{payload}")
        return payload


def _worker_main(connection: Connection, policy_dir: str, num_envs: int, image_size: int, index: int,
                 seed: int, reward_mode: str) -> None:
    """A worker: load the start policy, then run shares until told to stop (``None``)."""
    from rlvla_ros.policies import load_policy

    torch.set_num_threads(1)
    torch.manual_seed(seed)
    try:
        policy = load_policy(policy_dir)
        rollouts = SimRollouts(num_envs, image_size, id_prefix=f"sim{index}", reward_mode=reward_mode)
    except Exception:
        connection.send(("error", traceback.format_exc()))
        return
    connection.send(("ready", None))
    try:
        while (message := connection.recv()) is not None:
            state, training, specs, options = message
            try:
                unexpected = policy.load_state_dict({k: torch.from_numpy(v) for k, v in state.items()},
                                                    strict=False).unexpected_keys
                if unexpected:
                    raise KeyError(f"weights the worker's policy does not have: {unexpected}")
                policy.train(training)
                connection.send(("episodes", rollouts.run(policy, specs, **options)))
            except Exception:
                connection.send(("error", traceback.format_exc()))
    except (EOFError, KeyboardInterrupt):
        pass
    finally:
        rollouts.close()
