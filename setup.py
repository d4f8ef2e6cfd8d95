"""Python side of rlvla_ros for pip users: metadata, dependencies and the `rlvla` command.

The ROS interfaces (msg/srv/action) and the node executables (lib/rlvla_ros/<node>) are built by CMakeLists.txt,
with colcon on a ROS 2 install or by `make setup` against the pip-installed ROS 2 wheels. Exact versions for the
pip-only path are pinned in requirements.txt.
"""

from setuptools import find_packages, setup

setup(
    name="rlvla_ros",
    version="0.1.0",
    description="Reinforcement-learning fine-tuning of vision-language-action policies on ROS 2",
    license="Apache-2.0",
    python_requires=">=3.10",
    packages=find_packages(include=["rlvla_ros", "rlvla_ros.*"]),
    package_data={"rlvla_ros": ["sim/assets/*.xml"]},
    install_requires=[
        "numpy>=1.26",
        "pyyaml>=6",
        "torch>=2.4",
        "transformers>=5",
        "peft>=0.13",
        "safetensors>=0.4",
        "mujoco>=3.2",
        "gymnasium>=1.0",
        "pillow>=10",
        "rosbags>=0.10",
        "mcap>=1.2",
        "pyarrow>=15",
        "av>=14",
        "tensorboard>=2.16",
        "matplotlib>=3.8",
        "tqdm>=4.66",
        "hypothesis>=6.100",
    ],
    entry_points={"console_scripts": ["rlvla = rlvla_ros.cli:main"]},
)
