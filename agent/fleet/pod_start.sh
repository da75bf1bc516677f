#!/usr/bin/env bash
# The start command of a lora-sweep pod on RunPod: install, work the sweep with one agent per GPU,
# then remove this pod. A pod whose start command simply exits is restarted by RunPod and keeps
# billing, so the removal sits in an EXIT trap and runs on every path: the agents finished, setup
# failed, the agents crashed, the pod was told to stop (SIGTERM), or the watchdog fired.
#
# Settings come from the pod's environment, set by `lora-sweep pods up`:
#   LORA_SWEEP_ID           the W&B sweep, entity/project/id
#   LORA_SWEEP_PACKAGE      pip requirement for lora-sweep: a pinned version or a git ref
#   LORA_SWEEP_TORCH_INDEX  pip index of the torch build for this image's CUDA ("" keeps the image's torch)
#   LORA_SWEEP_MAX_HOURS    watchdog: stop the agents and remove the pod after this many hours
#   LORA_SWEEP_STOP_GRACE_S seconds the agents get to stop before they are killed (default 60)
#   LORA_SWEEP_WORKDIR      where agent logs go (a network volume keeps them after the pod)
#   RUNPOD_POD_ID           set by RunPod in every pod
set -uo pipefail

log() { echo "[pod] $(date -u +%H:%M:%S) $*"; }

CHILD_PID=""
WATCHDOG_PID=""

remove_pod() {
  local status=$?
  trap - EXIT
  trap '' INT TERM
  if [ -n "$WATCHDOG_PID" ]; then kill "$WATCHDOG_PID" 2>/dev/null; fi
  log "exiting with status $status: removing pod ${RUNPOD_POD_ID:-<RUNPOD_POD_ID unset>}"
  if ! runpodctl remove pod "${RUNPOD_POD_ID:-}"; then
    log "runpodctl could not remove this pod: run 'lora-sweep pods down' or remove it in the console"
  fi
  exit "$status"
}

# A sleep that can be cancelled without leaving the sleep behind: run in the background.
sleep_then() {  # $1: seconds, rest: command to run after
  local seconds=$1
  shift
  sleep "$seconds" &
  local sleeper=$!
  trap 'kill $sleeper 2>/dev/null; exit 0' TERM
  wait "$sleeper" && "$@"
}

stop_child() {  # $1: signal name, $2: exit status
  log "got $1: stopping"
  if [ -n "$CHILD_PID" ] && kill -0 "$CHILD_PID" 2>/dev/null; then
    kill -TERM "$CHILD_PID" 2>/dev/null
    sleep_then "${LORA_SWEEP_STOP_GRACE_S:-60}" kill -KILL "$CHILD_PID" &
    local killer=$!
    wait "$CHILD_PID"
    kill "$killer" 2>/dev/null
  fi
  exit "$2"
}

trap remove_pod EXIT
trap 'stop_child TERM 143' TERM
trap 'stop_child INT 130' INT

# Run a step in the background and wait for it, so that a signal is handled at once.
run_step() {
  "$@" &
  CHILD_PID=$!
  wait "$CHILD_PID"
}

install_package() {
  if [ -n "${LORA_SWEEP_TORCH_INDEX:-}" ]; then
    log "installing torch from $LORA_SWEEP_TORCH_INDEX"
    pip install --quiet torch --index-url "$LORA_SWEEP_TORCH_INDEX" || return 1
  fi
  log "installing $LORA_SWEEP_PACKAGE"
  pip install --quiet "$LORA_SWEEP_PACKAGE"
}

watchdog() {
  log "watchdog: --max-hours $LORA_SWEEP_MAX_HOURS reached"
  kill -TERM $$
}

if [ -z "${LORA_SWEEP_ID:-}" ] || [ -z "${LORA_SWEEP_PACKAGE:-}" ]; then
  log "LORA_SWEEP_ID and LORA_SWEEP_PACKAGE must be set"
  exit 2
fi
if [ -n "${LORA_SWEEP_MAX_HOURS:-}" ]; then
  sleep_then "$(awk -v h="$LORA_SWEEP_MAX_HOURS" 'BEGIN { printf "%.3f", h * 3600 }')" watchdog &
  WATCHDOG_PID=$!
fi
cd "${LORA_SWEEP_WORKDIR:-.}" || exit 2

if ! run_step install_package; then
  log "setup failed"
  exit 3
fi
log "working sweep $LORA_SWEEP_ID with one agent per GPU"
run_step lora-sweep agent "$LORA_SWEEP_ID" --gpus all
status=$?
log "agents exited with status $status"
exit "$status"
