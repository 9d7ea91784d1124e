#!/usr/bin/env bash
# Sets up Lumina inside this checkout: a virtual environment with the pinned ROS 2 Kilted wheels and every
# other dependency (requirements.txt), then the colcon build of the package (interfaces, Python package,
# executables, launch and config files) into install/. Idempotent: each step runs only when its inputs
# changed since it last succeeded. Nothing outside the checkout is created or changed.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
venv="$root/.venv"

# One setup at a time per checkout (two shells, or tests and a run, starting together).
mkdir -p "$root/build"
exec 9>"$root/build/.setup.lock"
flock 9

say() { printf '[setup] %s\n' "$*"; }
die() { printf '[setup] error: %s\n' "$*" >&2; exit 1; }

# The ROS 2 wheels on PyPI are CPython 3.11 and 3.12 builds only.
find_python() {
  local candidate
  for candidate in "${LUMINA_PYTHON:-}" python3.11 python3.12 python3; do
    [ -n "$candidate" ] || continue
    command -v "$candidate" >/dev/null 2>&1 || continue
    if "$candidate" -c 'import sys; sys.exit(0 if sys.version_info[:2] in ((3, 11), (3, 12)) else 1)' 2>/dev/null; then
      command -v "$candidate"; return 0
    fi
  done
  return 1
}

# System tools the interface build needs (Debian names). Installed when missing and we may (root + apt-get);
# otherwise the message says what to install.
missing=()
command -v cmake >/dev/null 2>&1 || missing+=(cmake)
command -v g++ >/dev/null 2>&1 || missing+=(g++)
command -v make >/dev/null 2>&1 || missing+=(make)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    say "installing ${missing[*]} with apt-get"
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"; } >/dev/null \
      || die "apt-get could not install ${missing[*]}"
  else
    die "missing ${missing[*]}: install them (Debian: sudo apt-get install ${missing[*]}) and run make setup again."
  fi
fi

# Tools only the multi-host system test uses (test/system/test_multi_host.py skips, saying why, without them):
# installed when we may, tried once per checkout so an offline machine does not retry apt-get at every setup.
optional=()
command -v ip >/dev/null 2>&1 || optional+=(iproute2)
command -v iptables >/dev/null 2>&1 || optional+=(iptables)
if [ ${#optional[@]} -gt 0 ] && [ ! -e build/.optional-tools-tried ] && [ "$(id -u)" = 0 ] \
    && command -v apt-get >/dev/null 2>&1; then
  touch build/.optional-tools-tried
  say "installing ${optional[*]} with apt-get (for the multi-host system test)"
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${optional[@]}"; } >/dev/null 2>&1 \
    || say "could not install ${optional[*]}: the multi-host test will skip its parts that need them"
fi

requirements_hash=$(sha256sum requirements.txt | cut -d' ' -f1)
if [ ! -x "$venv/bin/python" ] || [ "$(cat "$venv/.lumina-requirements" 2>/dev/null)" != "$requirements_hash" ]; then
  if [ ! -x "$venv/bin/python" ]; then
    python=$(find_python) || die "Python 3.11 or 3.12 is required (the ROS 2 Kilted wheels exist only for these); found: $(python3 --version 2>&1 || echo none). Install one, or point LUMINA_PYTHON at it."
    if ! "$python" -c 'import venv, ensurepip' 2>/dev/null; then
      if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && [[ "$python" == /usr/bin/* ]]; then
        say "installing python3-venv with apt-get"
        { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv; } >/dev/null \
          || die "apt-get could not install python3-venv"
      else
        die "$python lacks the venv/ensurepip modules (Debian: sudo apt-get install python3-venv)."
      fi
    fi
    say "creating the virtual environment .venv with $("$python" --version)"
    "$python" -m venv "$venv"
  fi
  say "installing the pinned dependencies (requirements.txt)"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-input -r requirements.txt \
    || die "pip could not install requirements.txt (see above)."
  echo "$requirements_hash" > "$venv/.lumina-requirements"
fi

# Build inputs: the interface files and build files by content; the Python, launch and config trees by file
# list only, since --symlink-install links each installed file to its source (edits are live, new files need
# a rebuild).
build_hash=$( {
  sha256sum package.xml CMakeLists.txt setup.cfg cmake/*.cmake msg/* srv/* action/*
  find lumina_nodes launch config -type f ! -name '*.pyc' | LC_ALL=C sort
} | sha256sum | cut -d' ' -f1)
if [ "$(cat install/.lumina-build 2>/dev/null)" != "$build_hash" ]; then
  say "building the package with colcon (interfaces, nodes, launch files; the first build takes a few minutes)"
  build_started=$SECONDS
  export CMAKE_PREFIX_PATH="$venv" AMENT_PREFIX_PATH="$venv"
  mkdir -p build
  "$venv/bin/colcon" --log-base build/log build --symlink-install --base-paths "$root" \
    --build-base build --install-base install --event-handlers console_cohesion- status- console_direct+ \
    --cmake-args -DPython3_EXECUTABLE="$venv/bin/python" -DBUILD_TESTING=OFF > build/colcon.log 2>&1 &
  colcon_pid=$!
  # The first build takes minutes: a line every 20 s says it is alive and what it is doing.
  next_report=$((SECONDS + 20))
  while kill -0 "$colcon_pid" 2>/dev/null; do
    sleep 1
    if [ "$SECONDS" -ge "$next_report" ]; then
      say "still building ($((SECONDS - build_started)) s): $(grep -v '^\s*$' build/colcon.log | tail -n 1 | cut -c1-90)"
      next_report=$((SECONDS + 20))
    fi
  done
  if ! wait "$colcon_pid"; then
    tail -n 60 build/colcon.log >&2
    die "colcon build failed; the full log is build/colcon.log."
  fi
  # --symlink-install keeps links to files that were deleted since: a stale module would still import
  find install -xtype l -delete
  say "built in $((SECONDS - build_started)) s"
  echo "$build_hash" > install/.lumina-build
fi
say "ready (source env.sh to use this environment in a shell)"
