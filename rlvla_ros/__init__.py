"""RL fine-tuning of vision-language-action policies on ROS 2."""

from pkgutil import extend_path

# On the pip-only path the generated interface modules (rlvla_ros.msg/.srv/.action) are installed into the venv's
# site-packages while these sources stay in the source tree: join both into one package. A no-op on colcon installs,
# where both live in one directory.
__path__ = extend_path(__path__, __name__)
