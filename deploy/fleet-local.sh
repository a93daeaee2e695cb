#!/usr/bin/env bash
# A whole sigil fleet on loopback, without containers: a throwaway PostgreSQL cluster, an
# s3s-fs server, 2 control replicas and 3 edges (edges 1 and 3 proxy the API to control 1,
# edge 2 to control 2).
#
#   deploy/fleet-local.sh                 # start, print the URLs, stop on Ctrl-C
#   deploy/fleet-local.sh start --detach  # start and return; the fleet keeps running
#   FLEET_DIR=/tmp/x deploy/fleet-local.sh stop
#   . "$FLEET_DIR/env"                    # exported ports, URLs and credentials for benches
#
# Environment: SIGIL (binary, default target/release/sigil), FLEET_DIR (default mktemp -d),
# FLEET_BASE_PORT (default 19000), SIGIL_DOMAIN (default localhost), S3S_FS (s3s-fs binary),
# FLEET_ACCOUNT_SID / FLEET_AUTH_TOKEN (the first account; fixed defaults below).
# Needs PostgreSQL's server (apt-get install postgresql) and s3s-fs
# (cargo install --locked s3s-fs --version 0.14.1 --features binary).
# Port layout from base B: B postgres, B+1 s3s-fs, B+11.. control APIs, B+21.. control
# admin, B+31.. edge HTTP, B+41.. edge HTTPS, B+51.. edge admin.
set -euo pipefail

die() { echo "fleet-local: $*" >&2; exit 1; }

# --- stop: every recorded process group, then PostgreSQL --------------------------------
stop_fleet() {
  set +e  # stop all we can, whatever fails
  local dir=$1
  if [[ -f $dir/pids ]]; then
    echo "fleet-local: stopping the fleet in $dir" >&2
    # sigil first (it drains in-flight requests for up to SIGIL_DRAIN_TIMEOUT, 10 s, after
    # SIGTERM and may still need its stores), then s3s-fs.
    term_groups "$dir" '^(control|edge)'
    term_groups "$dir" '^s3$'
    rm -f "$dir/pids"
  fi
  if [[ -f $dir/pg/data/postmaster.pid ]]; then
    echo "fleet-local: stopping PostgreSQL" >&2
    as_pg "$(cat "$dir/pg/bin")/pg_ctl" -w -D "$dir/pg/data" stop -m fast >/dev/null
  fi
  return 0
}

# term_groups DIR NAME-REGEX: SIGTERM to the process groups of the matching `name pid` lines
# of DIR/pids, up to 15 s for them to end, then SIGKILL.
term_groups() {
  local pids pid i alive
  pids=$(awk -v re="$2" '$1 ~ re { print $2 }' "$1/pids")
  for pid in $pids; do kill -TERM -- "-$pid" 2>/dev/null; done
  for ((i = 0; i < 150; i++)); do
    alive=0
    for pid in $pids; do if kill -0 "$pid" 2>/dev/null; then alive=1; fi; done
    if ((alive == 0)); then return 0; fi
    sleep 0.1
  done
  for pid in $pids; do kill -KILL -- "-$pid" 2>/dev/null; done
}

# PostgreSQL's programs run as the cluster's owner: `postgres` when we are root (initdb
# refuses root), else the current user; from / (the owner may not enter our directory).
as_pg() {
  if ((EUID == 0)); then (cd / && runuser -u postgres -- "$@"); else (cd / && "$@"); fi
}

cmd=${1:-start}
case $cmd in
  stop)
    [[ -n ${FLEET_DIR:-} ]] || die "stop needs FLEET_DIR (printed at start)"
    stop_fleet "$FLEET_DIR"
    exit 0 ;;
  start) ;;
  *) die "usage: $0 [start [--detach] | stop]" ;;
esac
detach=0
[[ ${2:-} == --detach ]] && detach=1

SIGIL=${SIGIL:-target/release/sigil}
[[ -x $SIGIL ]] || die "no sigil binary at $SIGIL (cargo build --release, or set SIGIL)"
SIGIL=$(realpath "$SIGIL")
BASE=${FLEET_BASE_PORT:-19000}
export SIGIL_DOMAIN=${SIGIL_DOMAIN:-localhost}
FLEET_DIR=${FLEET_DIR:-$(mktemp -d /tmp/sigil-fleet.XXXXXX)}
mkdir -p "$FLEET_DIR"
FLEET_DIR=$(realpath "$FLEET_DIR")
[[ -e $FLEET_DIR/pg ]] && die "$FLEET_DIR holds a fleet already (stop it; use a new FLEET_DIR)"
# Known credentials, so that deploy tools and benches can log in.
ACCOUNT_SID=${FLEET_ACCOUNT_SID:-AC000000000000000000000000000f1ee7}  # AC + 32 hex digits
AUTH_TOKEN=${FLEET_AUTH_TOKEN:-fleet-local-auth-token-0001}
S3_KEY=fleetkey S3_SECRET=fleet_secret_0001

# From here on a failure (or Ctrl-C) takes down whatever was started.
trap 'stop_fleet "$FLEET_DIR"' EXIT
trap 'exit 130' INT TERM

# --- PostgreSQL: newest Debian server binaries, else PATH ---------------------------------
PGBIN=$(find /usr/lib/postgresql -maxdepth 3 -path '*/bin/initdb' 2>/dev/null | sort -V | tail -n1)
PGBIN=${PGBIN:-$(command -v initdb || true)}
[[ -n $PGBIN ]] || die "no initdb (apt-get install postgresql)"
PGBIN=$(dirname "$PGBIN")
PG_PORT=$BASE
mkdir -p "$FLEET_DIR/pg"
echo "$PGBIN" >"$FLEET_DIR/pg/bin"
if ((EUID == 0)); then
  chmod 711 "$FLEET_DIR"   # postgres must traverse it (the env file stays 600)
  chown -R postgres:postgres "$FLEET_DIR/pg"
fi
echo "fleet-local: PostgreSQL on 127.0.0.1:$PG_PORT" >&2
as_pg "$PGBIN/initdb" --auth=trust --username=sigil --encoding=UTF8 --no-sync \
  -D "$FLEET_DIR/pg/data" >"$FLEET_DIR/pg.log" 2>&1 || die "initdb failed: see $FLEET_DIR/pg.log"
as_pg "$PGBIN/pg_ctl" -w -t 30 -D "$FLEET_DIR/pg/data" -l "$FLEET_DIR/pg/log" \
  -o "-p $PG_PORT -k $FLEET_DIR/pg -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200" \
  start >>"$FLEET_DIR/pg.log" 2>&1 || die "pg_ctl start failed: see $FLEET_DIR/pg/log"
"$PGBIN/createdb" -h 127.0.0.1 -p "$PG_PORT" -U sigil sigil
export SIGIL_METADATA="postgres://sigil:fleet@127.0.0.1:$PG_PORT/sigil"  # trust: any password

# --- processes of our own: each in its own process group, logged to $FLEET_DIR/NAME.log ----
# spawn NAME COMMAND... ; wait_line NAME TEXT waits for TEXT in the log (or the process's end).
spawn() {
  local name=$1; shift
  setsid "$@" </dev/null >"$FLEET_DIR/$name.log" 2>&1 &
  echo "$name $!" >>"$FLEET_DIR/pids"
}
pid_of() { awk -v n="$1" '$1 == n { print $2 }' "$FLEET_DIR/pids"; }
wait_line() {
  local name=$1 text=$2 pid i
  pid=$(pid_of "$name")
  for ((i = 0; i < 600; i++)); do
    grep -qF -- "$text" "$FLEET_DIR/$name.log" && return 0
    kill -0 "$pid" 2>/dev/null || { tail -n 20 "$FLEET_DIR/$name.log" >&2; die "$name exited"; }
    sleep 0.1
  done
  tail -n 20 "$FLEET_DIR/$name.log" >&2
  die "$name: no \"$text\" within 60 s"
}
listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# --- s3s-fs: one bucket, a directory -----------------------------------------------------
S3S_FS=${S3S_FS:-$(command -v s3s-fs || echo "${CARGO_HOME:-$HOME/.cargo}/bin/s3s-fs")}
[[ -x $S3S_FS ]] || die "no s3s-fs (cargo install --locked s3s-fs --version 0.14.1 --features binary)"
S3_PORT=$((BASE + 1))
mkdir -p "$FLEET_DIR/s3/sigil"
spawn s3 "$S3S_FS" --host 127.0.0.1 --port "$S3_PORT" \
  --access-key "$S3_KEY" --secret-key "$S3_SECRET" "$FLEET_DIR/s3"
for ((i = 0; i < 200; i++)); do listening "$S3_PORT" && break; sleep 0.1; done
listening "$S3_PORT" || die "s3s-fs does not listen on $S3_PORT: see $FLEET_DIR/s3.log"
export SIGIL_BLOBS=s3://sigil/fleet AWS_ENDPOINT_URL="http://127.0.0.1:$S3_PORT" \
  AWS_REGION=us-east-1 AWS_ACCESS_KEY_ID=$S3_KEY AWS_SECRET_ACCESS_KEY=$S3_SECRET \
  AWS_ALLOW_HTTP=true

# --- 2 control replicas, one after the other (the first creates the schema and account) ---
api_urls=() control_admin=()
for n in 1 2; do
  api=127.0.0.1:$((BASE + 10 + n)) admin=127.0.0.1:$((BASE + 20 + n))
  SIGIL_ACCOUNT_SID=$ACCOUNT_SID SIGIL_AUTH_TOKEN=$AUTH_TOKEN \
    spawn "control$n" "$SIGIL" serve --role control --data "$FLEET_DIR/control$n" \
    --api "$api" --admin "$admin"
  wait_line "control$n" "sigil: API listening on"
  api_urls+=("http://$api") control_admin+=("http://$admin")
done

# --- 3 edges: edges 1 and 3 go to control 1 for the API, edge 2 to control 2 --------------
edge_http=() edge_https=() edge_admin=()
for n in 1 2 3; do
  control=${api_urls[$(((n + 1) % 2))]}
  http=$((BASE + 30 + n)) https=$((BASE + 40 + n)) admin=$((BASE + 50 + n))
  spawn "edge$n" "$SIGIL" serve --role edge --data "$FLEET_DIR/edge$n" \
    --cache-dir "$FLEET_DIR/edge$n" --control-url "$control" --http "127.0.0.1:$http" \
    --https "127.0.0.1:$https" --admin "127.0.0.1:$admin"
  wait_line "edge$n" "sigil: edge ready"
  edge_http+=("$http") edge_https+=("$https") edge_admin+=("$admin")
done

# --- the env file for benches (sourced: `. $FLEET_DIR/env`) -------------------------------
{
  for v in FLEET_DIR SIGIL_DOMAIN SIGIL_METADATA SIGIL_BLOBS AWS_ENDPOINT_URL AWS_REGION \
    AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_ALLOW_HTTP; do
    printf 'export %s=%q\n' "$v" "${!v}"
  done
  printf 'export FLEET_EDGE_HTTP_PORTS=%q\n' "${edge_http[*]}"
  printf 'export FLEET_EDGE_HTTPS_PORTS=%q\n' "${edge_https[*]}"
  printf 'export FLEET_EDGE_ADMIN_PORTS=%q\n' "${edge_admin[*]}"
  printf 'export FLEET_CONTROL_ADMIN_URLS=%q\n' "${control_admin[*]}"
  printf 'export FLEET_API_URLS=%q\n' "${api_urls[*]}"
  printf 'export FLEET_PG_PORT=%q FLEET_S3_PORT=%q\n' "$PG_PORT" "$S3_PORT"
  # The sigil CLI, twilio-run's preload and the Twilio SDKs read these.
  printf 'export SIGIL_API_URL=%q\n' "${api_urls[0]}"
  printf 'export TWILIO_ACCOUNT_SID=%q TWILIO_AUTH_TOKEN=%q\n' "$ACCOUNT_SID" "$AUTH_TOKEN"
} >"$FLEET_DIR/env"
chmod 600 "$FLEET_DIR/env"

cat <<EOF
sigil fleet in $FLEET_DIR (logs: $FLEET_DIR/*.log; env: . $FLEET_DIR/env)
  edges (HTTP):  ${edge_http[*]/#/http://127.0.0.1:}
  edges (HTTPS): ${edge_https[*]/#/https://127.0.0.1:}
  edge admin:    ${edge_admin[*]/#/http://127.0.0.1:}   (/healthz /readyz /metrics)
  control API:   ${api_urls[*]}
  control admin: ${control_admin[*]}
  API via edge:  http://serverless.$SIGIL_DOMAIN:${edge_http[0]}/v1/Services
  account:       $ACCOUNT_SID  auth token: $AUTH_TOKEN
  PostgreSQL:    $SIGIL_METADATA
  S3:            $AWS_ENDPOINT_URL ($SIGIL_BLOBS, key $S3_KEY)
EOF

if ((detach)); then
  trap - EXIT INT TERM
  echo "detached; stop with: FLEET_DIR=$FLEET_DIR $0 stop"
  exit 0
fi
echo "Ctrl-C stops the fleet."
# Returns when any of our processes ends (or on Ctrl-C); the EXIT trap stops the rest.
wait -n || true
echo "fleet-local: a process ended (see its log); stopping the fleet" >&2
exit 1
