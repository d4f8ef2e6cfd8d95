"""Thin rclpy nodes: each module is one node executable (`ros2 run rlvla_ros <module>`)."""
