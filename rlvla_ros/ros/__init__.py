"""Helpers shared by the rclpy nodes at the ROS edge (conversions, parameters, executors, the graph rollout source)."""
