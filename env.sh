# Puts a bash shell into Lumina's environment: the virtual environment, the colcon install space and the
# loopback-only DDS defaults. Usage, from any directory:  source env.sh   (after make setup)
# ROS_DOMAIN_ID keeps a value you set before sourcing; it defaults to 77.
_lumina_root=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
if [ ! -f "$_lumina_root/install/setup.bash" ]; then
  echo "env.sh: $_lumina_root is not set up yet; run: make -C $_lumina_root setup" >&2
  return 1 2>/dev/null || exit 1
fi
export VIRTUAL_ENV="$_lumina_root/.venv"
case ":$PATH:" in *":$VIRTUAL_ENV/bin:"*) ;; *) export PATH="$VIRTUAL_ENV/bin:$PATH" ;; esac
# The venv is the ROS underlay (the wheels install a ROS prefix into it).
case ":${AMENT_PREFIX_PATH:-}:" in *":$VIRTUAL_ENV:"*) ;; *) export AMENT_PREFIX_PATH="$VIRTUAL_ENV${AMENT_PREFIX_PATH:+:$AMENT_PREFIX_PATH}" ;; esac
# shellcheck disable=SC1091
source "$_lumina_root/install/setup.bash"
# The package's executables (lumina_launch, the nodes) by name, as `ros2 run lumina_nodes <name>` would find them.
case ":$PATH:" in *":$_lumina_root/install/lumina_nodes/lib/lumina_nodes:"*) ;;
  *) export PATH="$_lumina_root/install/lumina_nodes/lib/lumina_nodes:$PATH" ;; esac
export RMW_IMPLEMENTATION=rmw_fastrtps_cpp
# Discovery stays on this host: no multicast beyond loopback.
export ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST
export ROS_DOMAIN_ID="${ROS_DOMAIN_ID:-77}"
# Fast DDS listens on loopback (and shared memory) only, instead of on every interface.
export FASTDDS_DEFAULT_PROFILES_FILE="$_lumina_root/config/dds/fastdds_loopback.xml"
export PYTHONUNBUFFERED=1
# Keep the source tree's lumina_nodes/ (no generated msg/ in it) from shadowing the installed package when
# Python runs from the checkout (`python -m ...`, `python -c ...`).
export PYTHONSAFEPATH=1
unset _lumina_root
