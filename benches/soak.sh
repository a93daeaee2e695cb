#!/usr/bin/env bash
# Ten minutes of mixed load against sigil with Deployments going on (benches/soak.py).
# Settings: SOAK_SECONDS (600), CONNS (32), DEPLOY_EVERY seconds (2). Installs wrk if missing.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v wrk >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null; }
cargo build --release --quiet
exec python3 benches/soak.py "$@"
