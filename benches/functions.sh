#!/usr/bin/env bash
# Functions: sigil against `twilio-run start` (default, and --no-fork-process) serving the same
# project (tests/fixtures/functions-project), in one run on one machine: req/s and p99 of a
# hello-world Function (/hello) and a TwiML one (/voice), sigil's first-call (cold) latency,
# and the RSS of a warm worker. Needs wrk, curl, node + npm (and network for npm the first
# time). Settings: DURATION (s, 10), CONNECTIONS (16), SERVER_CPUS (0), CLIENT_CPUS (1).
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-10}
CONNECTIONS=${CONNECTIONS:-16}
SERVER_CPUS=${SERVER_CPUS:-0}
CLIENT_CPUS=${CLIENT_CPUS:-1}
SID=AC00000000000000000000000000000001
TOKEN=0123456789abcdef0123456789abcdef

cargo build --release --quiet --bin sigil
BIN=$PWD/target/release/sigil
TOOLS=$PWD/target/tmp/npm-tools
[ -x "$TOOLS/node_modules/.bin/twilio-run" ] ||
    npm install --no-audit --no-fund --loglevel=error --prefix "$TOOLS" 'twilio-run@5' >/dev/null
WORK=$(mktemp -d)
chmod 755 "$WORK" # workers run as `nobody` when this runs as root: they must reach it
trap 'kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$WORK"' EXIT
cp -r tests/fixtures/functions-project "$WORK/project"
(cd "$WORK/project" && npm install --no-audit --no-fund --loglevel=error >/dev/null)

echo "# CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) CPUs; server on CPU $SERVER_CPUS, wrk on CPU $CLIENT_CPUS; node $(node --version)"

load() { # name url [Host] -> a table row, after a 3 s warm-up (workers started, JIT warm)
    local out host=()
    [ -n "${3:-}" ] && host=(-H "Host: $3")
    taskset -c "$CLIENT_CPUS" wrk -t1 -c"$CONNECTIONS" -d3s --timeout 10s "${host[@]}" "$2" >/dev/null 2>&1
    out=$(taskset -c "$CLIENT_CPUS" wrk -t1 -c"$CONNECTIONS" -d"${DURATION}s" --timeout 10s --latency "${host[@]}" "$2" 2>&1)
    local rps p99 errors
    rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
    p99=$(awk '$1 == "99%" {print $2}' <<<"$out")
    errors=$(awk '/Non-2xx|Socket errors/ {print}' <<<"$out" | tr '\n' ' ')
    echo "| $1 | $rps | $p99 | ${errors:-none} |"
}

wait_for() { for _ in $(seq 1 100); do curl -fs -o /dev/null "$1" && return 0; sleep 0.2; done; echo "not up: $1" >&2; return 1; }

echo "| server | req/s | p99 | errors |"
echo "|---|---|---|---|"

# sigil: one process, logs as for load tests.
PORT=18180
SIGIL_ACCOUNT_SID=$SID SIGIL_AUTH_TOKEN=$TOKEN SIGIL_LOG=warn taskset -c "$SERVER_CPUS" \
    "$BIN" serve --data "$WORK/data" --http 127.0.0.1:$PORT --https 127.0.0.1:18543 \
    --api 127.0.0.1:18181 --access-log false --request-logs false --workers 1 >/dev/null 2>&1 &
SIGIL_PID=$!
wait_for http://127.0.0.1:18181/healthz
DEPLOYED=$(cd "$WORK/project" && SIGIL_API_URL=http://127.0.0.1:18181 TWILIO_ACCOUNT_SID=$SID \
    TWILIO_AUTH_TOKEN=$TOKEN "$BIN" deploy --environment bench 2>&1)
HOST=$(grep -m1 -o 'http://[^:/]*' <<<"$DEPLOYED" | sed 's#http://##')
cold=$(curl -s -o /dev/null -w '%{time_total}' -H "Host: $HOST" "http://127.0.0.1:$PORT/hello")
for path in hello voice; do
    load "sigil /$path" "http://127.0.0.1:$PORT/$path" "$HOST"
done
workers=$(pgrep -f "$WORK/data/functions/runner.js" || true)
rss=$(for p in $workers; do awk '/VmRSS/ {print $2}' /proc/$p/status; done | sort -n | tail -1)
n_workers=$(wc -w <<<"$workers")
sigil_rss=$(awk '/VmRSS/ {print $2}' /proc/$SIGIL_PID/status)
kill $SIGIL_PID; wait $SIGIL_PID 2>/dev/null || true
# Cold again: a restarted sigil, the Build's directory already on disk.
SIGIL_ACCOUNT_SID=$SID SIGIL_AUTH_TOKEN=$TOKEN SIGIL_LOG=warn taskset -c "$SERVER_CPUS" \
    "$BIN" serve --data "$WORK/data" --http 127.0.0.1:$PORT --https 127.0.0.1:18543 \
    --api 127.0.0.1:18181 --workers 1 >/dev/null 2>&1 &
SIGIL_PID=$!
wait_for http://127.0.0.1:18181/healthz
cold_restart=$(curl -s -o /dev/null -w '%{time_total}' -H "Host: $HOST" "http://127.0.0.1:$PORT/hello")
warm=$(curl -s -o /dev/null -w '%{time_total}' -H "Host: $HOST" "http://127.0.0.1:$PORT/hello")
kill $SIGIL_PID; wait $SIGIL_PID 2>/dev/null || true

# twilio-run start: forking a process per request (its default), in-process, and in-process
# without clearing its require cache per request (--no-live: its fastest).
for mode in fork no-fork no-fork-no-live; do
    flag=()
    [ $mode = no-fork ] && flag=(--no-fork-process)
    [ $mode = no-fork-no-live ] && flag=(--no-fork-process --no-live)
    # A session of its own: its forked children are killed with it.
    (cd "$WORK/project" && exec setsid taskset -c "$SERVER_CPUS" "$TOOLS/node_modules/.bin/twilio-run" start \
        --port 18190 "${flag[@]}" >/dev/null 2>&1) &
    TR_PID=$!
    wait_for http://127.0.0.1:18190/hello
    for path in hello voice; do
        load "twilio-run start ($mode) /$path" "http://127.0.0.1:18190/$path"
    done
    kill -- -"$TR_PID" 2>/dev/null || kill "$TR_PID" 2>/dev/null || true
    wait $TR_PID 2>/dev/null || true
    pkill -f "$WORK/project/node_modules/@twilio/runtime-handler" 2>/dev/null || true
    sleep 1
done

echo
echo "sigil first call after deploy (Build directory written, worker started): ${cold} s"
echo "sigil first call after a restart (worker started): ${cold_restart} s; then warm: ${warm} s"
echo "sigil warm workers after the load: $n_workers, largest RSS ${rss:-?} KiB; sigil itself ${sigil_rss} KiB"
