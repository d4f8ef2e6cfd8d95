"""Fine-tuning jobs: requests validated and run one at a time (the learner node's core), named recipes, the BC -> RL
and offline experiments, and failure analysis. ROS-free."""
