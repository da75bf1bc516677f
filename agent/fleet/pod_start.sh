#!/usr/bin/env bash
# The start command of a lora-sweep pod on RunPod: install, work the sweep with one agent per GPU,
# then end this pod. A pod whose start command simply exits is restarted by RunPod and keeps
# billing, so ending the pod sits in an EXIT trap and runs on every path: the agents finished,
# setup failed, the agents crashed, the pod was told to stop (SIGTERM), or the watchdog fired.
#
# How a pod ends: removed when its work is over (done, stopped, reclaimed, deadline reached);
# stopped, not removed, when it failed (setup, agents crashing), so that RunPod keeps it listed
# with its log and `lora-sweep pods status` shows it; a stopped pod holds no GPU and bills no GPU.
# Either way the last line of its output, and $STATE_DIR/ended on the workdir, say why.
#
# Settings come from the pod's environment, set by `lora-sweep pods up`: the LORA_SWEEP_* variables,
# each with who sets it and what it means, are the table in agent/env_vars.py. RunPod adds:
#   RUNPOD_POD_ID           set by RunPod in every pod
#   RUNPOD_API_KEY          set by RunPod in every pod, scoped to it: the API fallback for ending it
set -uo pipefail

POD_ID=${RUNPOD_POD_ID:-}
WORKDIR=${LORA_SWEEP_WORKDIR:-/workspace}
STATE_DIR="$WORKDIR/.lora-sweep/pods/${POD_ID:-no-pod-id}"
RUN_DIR=${LORA_SWEEP_RUN_DIR:-$WORKDIR}
# pods up always sets both graces (agent/fleet/pods.py); each fallback equals its Python constant,
# which tests/test_fleet_pod_script.py holds.
RECLAIM_GRACE_S=${LORA_SWEEP_RECLAIM_GRACE_S:-3.5}
DEADLINE_GRACE_S=${LORA_SWEEP_STOP_GRACE_S:-60}
MAX_BOOTS=3  # a pod that keeps being restarted without ending is ended, not worked again
REASON="the start script ended early"
CHILD_PID=""
WATCHDOG_PID=""
WORK_OVER=""  # set when the pod was stopped or reached its deadline: removed whatever the exit status

log() {
  local line
  line="[pod] $(date -u +%H:%M:%S) $*"
  echo "$line"
  if [ -d "$STATE_DIR" ]; then echo "$line" >>"$STATE_DIR/pod.log"; fi
}

# RunPod's GraphQL API, called with the key RunPod put in this pod: the fallback when runpodctl fails.
runpod_api() {  # $1: the mutation's body
  if [ -z "${RUNPOD_API_KEY:-}" ]; then
    log "RUNPOD_API_KEY is not set in this pod: cannot call RunPod's API"
    return 1
  fi
  LORA_SWEEP_MUTATION="mutation { $1 }" python3 - <<'EOF'
import json, os, sys, urllib.request

url = os.environ.get("RUNPOD_API_BASE_URL", "https://api.runpod.io") + "/graphql"
body = json.dumps({"query": os.environ["LORA_SWEEP_MUTATION"]}).encode()
headers = {"Content-Type": "application/json", "Authorization": "Bearer " + os.environ["RUNPOD_API_KEY"]}
try:
    with urllib.request.urlopen(urllib.request.Request(url, body, headers), timeout=5) as response:
        errors = json.load(response).get("errors")
except Exception as error:
    sys.exit(f"[pod] RunPod's API: {error}")
if errors:
    sys.exit(f"[pod] RunPod's API: {errors[0].get('message')}")
EOF
}

# Remove (or stop) this pod: runpodctl's current verb, then the API, each tried three times.
end_pod() {  # $1: delete or stop
  local verb=$1 mutation pause
  if [ "$verb" = delete ]; then
    mutation="podTerminate(input: {podId: \"$POD_ID\"})"
  else
    mutation="podStop(input: {podId: \"$POD_ID\"}) { id desiredStatus }"
  fi
  for pause in 0 1 2; do
    sleep "$pause"
    if runpodctl pod "$verb" "$POD_ID"; then return 0; fi
    log "runpodctl pod $verb failed"
    if runpod_api "$mutation"; then return 0; fi
  done
  return 1
}

finish() {
  local status=$?
  trap - EXIT
  trap '' INT TERM USR1
  if [ -n "$WATCHDOG_PID" ]; then kill "$WATCHDOG_PID" 2>/dev/null && wait "$WATCHDOG_PID"; fi
  if [ -d "$STATE_DIR" ]; then echo "exit $status: $REASON" >"$STATE_DIR/ended"; fi
  if [ -z "$POD_ID" ]; then
    log "ended: $REASON (exit $status); RUNPOD_POD_ID is unset, nothing to remove"
    exit "$status"
  fi
  # A failure keeps the pod, stopped, so its log stays readable; everything else removes it. An
  # agent killed by a signal (the OOM killer: 137) is a failure too: only stop_child marks a stop.
  if [ -z "$WORK_OVER" ] && [ "$status" -ne 0 ]; then
    log "ended: $REASON (exit $status); stopping pod $POD_ID (kept for its log: lora-sweep pods down removes it)"
    if end_pod stop; then exit "$status"; fi
  else
    log "ended: $REASON (exit $status); removing pod $POD_ID"
  fi
  if ! end_pod delete; then
    log "could not remove this pod: run 'lora-sweep pods down' or remove it in RunPod's console"
  fi
  exit "$status"
}

# In the background, detached from the output: sleep $1 seconds, then run the rest. A TERM to it ($!)
# ends its sleep too, so a cancelled one neither outlives the script nor acts late (on a reused PID).
after() {  # $1: seconds, then the command
  local seconds=$1
  shift
  (
    sleeper=""
    trap 'if [ -n "$sleeper" ]; then kill "$sleeper"; fi; exit 0' TERM
    sleep "$seconds" &
    sleeper=$!
    wait "$sleeper"
    "$@"
  ) >/dev/null 2>&1 &
}

# Stop the agents: a reclaim (SIGTERM) leaves seconds, the watchdog (USR1) a minute.
stop_child() {  # $1: what happened, $2: grace in seconds, $3: exit status
  REASON=$1
  WORK_OVER=1
  log "$1: stopping the agents (grace ${2}s)"
  if [ -n "$CHILD_PID" ] && kill -0 "$CHILD_PID" 2>/dev/null; then
    kill -TERM "$CHILD_PID" 2>/dev/null
    after "$2" kill -KILL "$CHILD_PID"
    local killer=$!
    wait "$CHILD_PID"
    kill "$killer" 2>/dev/null
    wait "$killer"
  fi
  exit "$3"
}

trap finish EXIT
trap 'stop_child "got SIGTERM (reclaimed or stopped)" "$RECLAIM_GRACE_S" 143' TERM
trap 'stop_child "got SIGINT" "$RECLAIM_GRACE_S" 130' INT
trap 'stop_child "deadline reached (--max-hours $LORA_SWEEP_MAX_HOURS since the first boot)" "$DEADLINE_GRACE_S" 143' USR1

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

# The boot count and the deadline live on the workdir: a restarted container finds them there.
count_boot() {
  local boots now
  boots=$(($(cat "$STATE_DIR/boots" 2>/dev/null || echo 0) + 1))
  echo "$boots" >"$STATE_DIR/boots"
  now=$(date +%s)
  if [ -n "${LORA_SWEEP_MAX_HOURS:-}" ] && [ ! -f "$STATE_DIR/deadline" ]; then
    awk -v now="$now" -v h="$LORA_SWEEP_MAX_HOURS" 'BEGIN { printf "%d\n", now + h * 3600 }' >"$STATE_DIR/deadline"
  fi
  if [ -f "$STATE_DIR/ended" ]; then
    REASON="restarted after it had ended ($(cat "$STATE_DIR/ended"))"
    return 1
  fi
  if [ "$boots" -gt "$MAX_BOOTS" ]; then
    REASON="restarted $((boots - 1)) times without ending"
    return 1
  fi
  log "boot $boots of pod $POD_ID"
}

start_watchdog() {
  local left
  left=$(($(cat "$STATE_DIR/deadline") - $(date +%s)))
  if [ "$left" -lt 0 ]; then left=0; fi
  log "deadline in ${left}s"
  after "$left" kill -USR1 $$
  WATCHDOG_PID=$!
}

if ! mkdir -p "$STATE_DIR" "$RUN_DIR" || ! cd "$RUN_DIR"; then
  REASON="cannot create $STATE_DIR or $RUN_DIR"
  exit 2
fi
if ! count_boot; then
  WORK_OVER=1
  exit 4
fi
if [ -z "${LORA_SWEEP_ID:-}" ] || [ -z "${LORA_SWEEP_PACKAGE:-}" ]; then
  REASON="LORA_SWEEP_ID and LORA_SWEEP_PACKAGE must be set"
  exit 2
fi
if [ -f "$STATE_DIR/deadline" ]; then start_watchdog; fi
# The image's own start script starts SSH (and more) and then sleeps: keep it in the background.
IMAGE_START=${LORA_SWEEP_IMAGE_START:-/start.sh}
if [ -x "$IMAGE_START" ]; then
  log "starting $IMAGE_START in the background (SSH)"
  "$IMAGE_START" >"$STATE_DIR/image-start.log" 2>&1 &
fi

REASON="setup failed: pip could not install $LORA_SWEEP_PACKAGE (or torch)"
if ! run_step install_package; then exit 3; fi
log "working sweep $LORA_SWEEP_ID with ${LORA_SWEEP_AGENTS_PER_GPU:-1} agent(s) per GPU"
REASON="the agents exited"
run_step lora-sweep agent "$LORA_SWEEP_ID" --gpus all
status=$?
if [ "$status" -eq 0 ]; then REASON="the sweep has no more runs for this pod"; else REASON="the agents failed"; fi
exit "$status"
