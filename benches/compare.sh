#!/usr/bin/env bash
# Side-by-side load comparison of sigil and nginx, in one run on this machine.
# Installs nginx, wrk and h2load (Debian packages) if missing, builds sigil in release mode,
# then runs benches/compare.py. Settings: RUNS (3), DURATION seconds per run (10),
# CONNS (64), SERVER_CPUS (0), CLIENT_CPUS (1), LOGS (off), FLOOR (off), SIZES, CASES, EXTRAS:
# see compare.py.
set -euo pipefail
cd "$(dirname "$0")/.."
missing=()
command -v nginx >/dev/null || missing+=(nginx)
command -v wrk >/dev/null || missing+=(wrk)
command -v h2load >/dev/null || missing+=(nghttp2-client)
if [ ${#missing[@]} -gt 0 ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
cargo build --release --quiet --bin sigil --example loadgen --example floor
exec python3 benches/compare.py "$@"
