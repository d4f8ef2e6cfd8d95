"""Episodes of a policy in simulation and what runs them: in-process and worker-process rollouts, evaluation on fixed
seeds, data-parallel helpers, learning curves and success-rate intervals. ROS-free."""
