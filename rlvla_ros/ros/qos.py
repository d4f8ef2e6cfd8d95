"""QoS of the latched graph-wide topics (the episode manager's, the e-stop state), shared by publisher and subscribers."""

from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy

INSTRUCTION_QOS = QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL,
                             reliability=ReliabilityPolicy.RELIABLE)
"""The episode manager latches the instruction: a node started later still gets it."""
EPISODE_EVENT_QOS = QoSProfile(depth=10, durability=DurabilityPolicy.TRANSIENT_LOCAL,
                               reliability=ReliabilityPolicy.RELIABLE)
"""A node started mid-episode still gets that episode's START."""
ESTOP_QOS = QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL, reliability=ReliabilityPolicy.RELIABLE)
"""The safety filter latches the e-stop state: a node started while it is engaged learns so at once."""
