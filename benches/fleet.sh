#!/usr/bin/env bash
# The fleet benchmark on loopback (issue #14): Deployment-to-visible on all edges, a cold
# edge's time to first byte and to a full route table over 1,000 and 10,000 Environments x 100
# assets (and its RSS), and edge req/s on cached content as `--role edge` against `--role all`.
#
#   benches/fleet.sh                       # the whole run (about 10-20 minutes on 2 vCPUs)
#   ENV_COUNTS="1000" ROUNDS=10 benches/fleet.sh        # smaller
#   PHASES="rps" benches/fleet.sh          # one phase (visible, cold, rps)
#
# Starts a throwaway fleet with deploy/fleet-local.sh (PostgreSQL, s3s-fs, 2 control replicas,
# 3 edges), runs benches/fleet.py against it (see its docstring for every setting: ROUNDS,
# ASSETS, POLL_MS, BUILD_POOL, ENV_COUNTS, API_THREADS, WRK_RUNS, WRK_SECONDS, WRK_CONNS), and
# prints a Markdown table. The fleet and every extra process are stopped on exit, failure or
# Ctrl-C. It does not build: SIGIL (default target/release/sigil) must exist.
#
# Settings here: SIGIL, FLEET_BASE_PORT (default 19600), RESULTS (default
# $FLEET_DIR/results.md; the table is also printed), KEEP_FLEET_DIR=1 (keep logs after the run).
# Needs: postgresql, s3s-fs, python3 with requests, wrk, taskset (see deploy/fleet-local.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

die() { echo "fleet bench: $*" >&2; exit 1; }

export SIGIL=${SIGIL:-target/release/sigil}
[[ -x $SIGIL ]] || die "no sigil binary at $SIGIL (cargo build --release, or set SIGIL)"
SIGIL=$(realpath "$SIGIL")
for tool in wrk taskset python3; do
  command -v "$tool" >/dev/null || die "$tool is missing"
done
python3 -c 'import requests' 2>/dev/null || die "python3 needs requests (apt-get install python3-requests)"

export FLEET_BASE_PORT=${FLEET_BASE_PORT:-19600}
export FLEET_DIR
FLEET_DIR=$(mktemp -d /tmp/sigil-fleet-bench.XXXXXX)
export RESULTS=${RESULTS:-$FLEET_DIR/results.md}
helper=""

# --- cleanup, whatever happens: the helper, the processes it started, then the fleet -------
cleanup() {
  local rc=$? pid
  set +e
  trap - EXIT INT TERM
  if [[ -n $helper ]] && kill -0 "$helper" 2>/dev/null; then
    kill -TERM "$helper" 2>/dev/null
    wait "$helper" 2>/dev/null
  fi
  # Cold edges and the req/s pair: each in its own process group (fleet.py records them).
  if [[ -f $FLEET_DIR/bench-pids ]]; then
    while read -r pid; do
      kill -0 "$pid" 2>/dev/null && kill -TERM -- "-$pid" 2>/dev/null
    done <"$FLEET_DIR/bench-pids"
    sleep 1
    while read -r pid; do
      kill -0 "$pid" 2>/dev/null && kill -KILL -- "-$pid" 2>/dev/null
    done <"$FLEET_DIR/bench-pids"
  fi
  deploy/fleet-local.sh stop
  if ((rc != 0)) || [[ ${KEEP_FLEET_DIR:-0} == 1 ]]; then
    echo "fleet bench: logs kept in $FLEET_DIR (exit status $rc)" >&2
  else
    # The results file is kept; the rest (database, bucket, caches) goes.
    cp "$RESULTS" "${FLEET_DIR}.results.md" 2>/dev/null && echo "fleet bench: table saved to ${FLEET_DIR}.results.md" >&2
    rm -rf "$FLEET_DIR"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- the fleet -------------------------------------------------------------------------------
started=$(date +%s)
deploy/fleet-local.sh start --detach >"$FLEET_DIR/fleet-start.log" 2>&1 \
  || { cat "$FLEET_DIR/fleet-start.log" >&2; die "the fleet did not start"; }
# shellcheck source=/dev/null
. "$FLEET_DIR/env"
echo "fleet bench: fleet up in $(($(date +%s) - started)) s ($FLEET_DIR)" >&2

# --- the measurements (in the background, so that a signal reaches the trap at once) -------
python3 -u benches/fleet.py &
helper=$!
wait "$helper"
helper=""

# Errors and warnings the fleet's processes logged during the run (there should be none).
echo "fleet bench: ERROR / WARN lines in the logs:" >&2
for f in "$FLEET_DIR"/*.log; do
  printf '  %s: %s errors, %s warnings\n' "$(basename "$f")" \
    "$(grep -c ' ERROR ' "$f" || true)" "$(grep -c ' WARN ' "$f" || true)" >&2
done
echo "fleet bench: done in $(($(date +%s) - started)) s" >&2
