# >>> rlvla_ros >>>
# Appended to .venv/bin/activate by `make setup`: the ROS 2 environment of the pip-installed Kilted wheels and of
# the rlvla_ros interfaces built into this venv (what `source install/setup.bash` does on a ROS 2 install).
_rlvla_saved_vars="AMENT_PREFIX_PATH LD_LIBRARY_PATH RMW_IMPLEMENTATION ROS_DISTRO ROS_VERSION ROS_PYTHON_VERSION _ROS_WHEELS_BOOTSTRAP_COMPLETE MUJOCO_GL"
for _rlvla_var in $_rlvla_saved_vars; do
    if [ -n "${!_rlvla_var+set}" ]; then eval "_RLVLA_OLD_$_rlvla_var=\"\${$_rlvla_var}\""; fi
done
export AMENT_PREFIX_PATH="$VIRTUAL_ENV${AMENT_PREFIX_PATH:+:$AMENT_PREFIX_PATH}"
# The wheels' bootstrapper re-executes every Python start with this path unless it is already in place.
export LD_LIBRARY_PATH="$VIRTUAL_ENV/lib$(for d in "$VIRTUAL_ENV"/lib/python3.*/site-packages/ros_*.libs; do [ -d "$d" ] && printf ':%s' "$d"; done)${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export _ROS_WHEELS_BOOTSTRAP_COMPLETE=1
export RMW_IMPLEMENTATION="${RMW_IMPLEMENTATION:-rmw_fastrtps_cpp}"
export ROS_DISTRO=kilted ROS_VERSION=2 ROS_PYTHON_VERSION=3
export MUJOCO_GL="${MUJOCO_GL:-egl}"
eval "_rlvla_venv_deactivate() $(declare -f deactivate | tail -n +2)"
deactivate() {
    for _rlvla_var in $_rlvla_saved_vars; do
        unset "$_rlvla_var"
        if [ -n "$(eval echo "\${_RLVLA_OLD_$_rlvla_var+set}")" ]; then
            eval "export $_rlvla_var=\"\${_RLVLA_OLD_$_rlvla_var}\""
            unset "_RLVLA_OLD_$_rlvla_var"
        fi
    done
    _rlvla_venv_deactivate "$@"
    if [ "${1:-}" != "nondestructive" ]; then unset -f _rlvla_venv_deactivate; fi
}
# <<< rlvla_ros <<<
