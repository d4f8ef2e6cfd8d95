"""QoS of the episode manager's topics, shared by the publisher and every subscriber."""

from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy

INSTRUCTION_QOS = QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL,
                             reliability=ReliabilityPolicy.RELIABLE)
"""The episode manager latches the instruction: a node started later still gets it."""
EPISODE_EVENT_QOS = QoSProfile(depth=10, durability=DurabilityPolicy.TRANSIENT_LOCAL,
                               reliability=ReliabilityPolicy.RELIABLE)
"""A node started mid-episode still gets that episode's START."""
