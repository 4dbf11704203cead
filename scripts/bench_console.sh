#!/usr/bin/env bash
# The console at scale: seeds a ledger of $SCALE_ROWS rows (default 1,000,000) spread over the
# last 30 days, starts the release broker on it and the release console, and times the Usage
# and Logs pages (and the Overview) over admin.sock: one warm-up, then the median of 3.
#
#   scripts/bench_console.sh               # run by scripts/bench.sh too
#   SCALE_ROWS=200000 scripts/bench_console.sh
set -euo pipefail
source "$(dirname "$0")/lib.sh"
need_cargo
cd "$REPO"
command -v curl >/dev/null 2>&1 || die "curl is needed"

ROWS="${SCALE_ROWS:-1000000}"
say "building release binaries"
cargo build --release --locked --quiet -p hero_aibroker_server -p hero_aibroker_admin --bins
cargo build --release --locked --quiet -p hero_aibroker_lib --example ledger_bench

WORK="$(mktemp -d)"
cleanup() {
  [ -n "${ADMIN_PID:-}" ] && kill -TERM "$ADMIN_PID" 2>/dev/null || true
  [ -n "${SERVER_PID:-}" ] && kill -TERM "$SERVER_PID" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

say "seeding $ROWS ledger rows over the last 30 days"
"$REPO/target/release/examples/ledger_bench" --rows "$ROWS" --keep "$WORK/scale.db" --days 30
echo "database: $(du -h "$WORK/scale.db" | cut -f1)"

cat >"$WORK/models.yml" <<'YAML'
providers:
  - {name: local, base_url: "http://127.0.0.1:9/v1"}
models:
  gpt-4o:
    display_name: GPT-4o
    tier: frontier
    context_window: 128000
    backends:
      - {provider: local, model_id: gpt-4o, priority: 1, input_cost: 2.5, output_cost: 10}
YAML
export HOME="$WORK" HERO_SOCKET_DIR="$WORK/s" RUST_LOG=warn DATABASE_URL="$WORK/scale.db"
"$REPO/target/release/hero_aibroker_server" --models-config "$WORK/models.yml" >"$WORK/server.log" 2>&1 &
SERVER_PID=$!
"$REPO/target/release/hero_aibroker_admin" >"$WORK/admin.log" 2>&1 &
ADMIN_PID=$!
SOCK="$WORK/s/hero_aibroker/admin.sock"
for _ in $(seq 1 100); do [ -S "$SOCK" ] && [ -S "$WORK/s/hero_aibroker/rpc.sock" ] && break; sleep 0.1; done
[ -S "$SOCK" ] || { cat "$WORK/server.log" "$WORK/admin.log"; die "the console did not start"; }

say "page times over admin.sock ($ROWS rows)"
printf '%-44s %10s %8s\n' "page" "median ms" "status"
slow=0
for page in \
  "/usage?range=30d&group_by=model" \
  "/usage?range=24h&group_by=key" \
  "/usage?range=7d&group_by=client" \
  "/usage.csv?range=30d&group_by=provider" \
  "/logs" \
  "/logs?model=gpt-4o&range=7d" \
  "/logs?status=error" \
  "/logs?key_id=key_0000000000000007" \
  "/logs?offset=5000" \
  "/"; do
  curl -s -o /dev/null --unix-socket "$SOCK" "http://localhost$page"
  times=()
  for _ in 1 2 3; do
    t="$(curl -s -o /dev/null -w '%{http_code} %{time_total}' --unix-socket "$SOCK" "http://localhost$page")"
    times+=("${t#* }"); code="${t%% *}"
  done
  ms="$(printf '%s\n' "${times[@]}" | sort -n | sed -n 2p | awk '{printf "%.0f", $1 * 1000}')"
  printf '%-44s %10s %8s\n' "$page" "$ms" "$code"
  [ "$ms" -lt 1000 ] || slow=$((slow + 1))
done
[ "$slow" = 0 ] || echo "$slow page(s) took 1 s or more"
