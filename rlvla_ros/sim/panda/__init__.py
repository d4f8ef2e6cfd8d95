"""gym-hil's Franka Panda (Robotiq 2F-85) PandaPickCube scene behind the interfaces of a ros2_control Franka."""
