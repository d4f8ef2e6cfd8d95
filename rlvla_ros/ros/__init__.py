"""Helpers shared by the rclpy nodes at the ROS edge (executable lookup, conversions, parameters)."""
