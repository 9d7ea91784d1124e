#!/usr/bin/env bash
# What `make run` runs (after make setup, inside env.sh): the city in simulation, the festival night.
#
# - Records every topic into log/nights/<date-time>/ (or where a record:=DIR argument says; record:= with no
#   value records nothing) and ends by drawing that night (lumina plot DIR: DIR/plots/*.png).
# - On a terminal, the launch's output goes to log/nights/<date-time>.log and the terminal shows `lumina view`
#   (80 columns, redrawn in place), then the festival's summary and every ERROR line of the launch. Not on a
#   terminal (a pipe, CI), the launch's own output is shown as it comes.
# - Exit status: the launch's.
# Arguments: launch arguments (name:=value), passed to city.launch.xml after use_sim_time:=true.
set -uo pipefail

stamp=$(date +%Y%m%d-%H%M%S)
night="log/nights/$stamp"
own_record=("record:=$night")
for arg in "$@"; do
  case "$arg" in record:=*) night="${arg#record:=}"; own_record=() ;; esac
done
mkdir -p log/nights
launch=(lumina_launch lumina_nodes city.launch.xml use_sim_time:=true "${own_record[@]}" "$@")
export ROS_LOG_DIR="$PWD/log"

if [ -t 1 ] && [ -z "${CI:-}" ]; then
  launch_log="log/nights/$stamp.log"
  "${launch[@]}" >"$launch_log" 2>&1 &
  launch_pid=$!
  # Background jobs of a script ignore Ctrl-C: pass it on, so the launch shuts the city down.
  trap 'kill -INT "$launch_pid" 2>/dev/null' INT TERM
  lumina view --until-done --period 0.5 &
  view_pid=$!
  # The view also ends when the launch does (a node that cannot start ends the launch before any festival).
  # SIGTERM: a background job of a script ignores SIGINT.
  (while kill -0 "$launch_pid" 2>/dev/null; do sleep 0.5; done; kill -TERM "$view_pid" 2>/dev/null) &
  watcher_pid=$!
  wait "$view_pid"  # the festival ended, or Ctrl-C ran the trap, or the launch ended
  # (bash keeps a finished job's status for wait even once it has reaped the process, which kill -0 no longer sees)
  wait "$launch_pid"
  status=$?
  while kill -0 "$launch_pid" 2>/dev/null; do  # a Ctrl-C interrupted wait: wait again for the real status
    wait "$launch_pid"
    status=$?
  done
  wait "$view_pid" 2>/dev/null
  kill "$watcher_pid" 2>/dev/null
  trap - INT TERM
  # The orchestrator's summary and every ERROR the launch logged, without the launch's process prefix.
  sed -n '/=== Lumina festival/,/result:/p' "$launch_log" | sed 's/^\[[a-z_]*-[0-9]*\] //'
  grep -E 'ERROR|FATAL' "$launch_log" | head -20
  echo "The launch's whole output: $launch_log"
else
  "${launch[@]}"
  status=$?
fi

if [ -n "$night" ] && [ -e "$night" ]; then
  echo "=== The night's pictures (lumina plot $night) ==="
  lumina plot "$night" || echo "make run: lumina plot $night failed (exit status: the launch's, $status)" >&2
fi
exit "$status"
