"""Fine-tuning job infrastructure: rollouts, evaluation, curves, data-parallel helpers, jobs and experiments."""
