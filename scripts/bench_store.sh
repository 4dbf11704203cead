#!/usr/bin/env bash
# The store under the broker: SQLite (embedded) beside PostgreSQL (a throwaway local cluster from
# scripts/pg.sh, fsync off). Three things:
#   1. the ledger writer's throughput on each (examples/ledger_bench, 200 000 rows);
#   2. the same release broker in front of the fake provider on each store, oha over rest.sock,
#      JSON chat at each concurrency, keyless: the store is off the request path, so the
#      latency should not move;
#   3. on PostgreSQL, a key with a budget: every request reserves from the broker's budget lease,
#      one database transaction per lease slice (10% of the budget), not per request.
# Run by scripts/bench.sh; alone:  BENCH_SECS=5 BENCH_STORE_CONC="1 32" scripts/bench_store.sh
set -euo pipefail
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/pg.sh"
cd "$REPO"
SECS="${BENCH_SECS:-5}"
CONC="${BENCH_STORE_CONC:-1 32}"
OUT="$REPO/target/bench"
mkdir -p "$OUT"
export PATH="$HOME/.cargo/bin:$PATH"
command -v oha >/dev/null 2>&1 || cargo install oha --locked --quiet
cargo build --release --locked --quiet -p hero_aibroker_server -p hero_aibroker_testkit --bins
cargo build --release --locked --quiet -p hero_aibroker_lib --example ledger_bench

WORK="$(mktemp -d)"
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  pg_stop
  rm -rf "$WORK"
}
trap cleanup EXIT
pg_start

say "ledger throughput: SQLite, then PostgreSQL"
target/release/examples/ledger_bench
target/release/examples/ledger_bench --db "$(pg_createdb ledger_bench)"

target/release/hero_aibroker_fake_provider --port 0 >"$WORK/fake.out" 2>&1 &
PIDS+=($!)
FAKE_URL="$(fake_url "$WORK/fake.out")"
[ -n "$FAKE_URL" ] || die "the fake provider did not start"
bench_models "$WORK/models.yml" "$FAKE_URL"
BODY='{"model":"bench","messages":[{"role":"user","content":"What is the weather like in San Francisco today?"}]}'

# start_broker NAME DATABASE_URL: starts a broker, sets SOCK and RPC.
start_broker() {
  local name="$1" url="$2"
  FAKE_KEY=bench-key RUST_LOG=warn HERO_SOCKET_DIR="$WORK/$name" DATABASE_URL="$url" \
    target/release/hero_aibroker_server --models-config "$WORK/models.yml" >"$WORK/$name.log" 2>&1 &
  PIDS+=($!)
  SOCK="$WORK/$name/hero_aibroker/rest.sock"; RPC="$WORK/$name/hero_aibroker/rpc.sock"
  for _ in $(seq 1 200); do [ -S "$SOCK" ] && [ -S "$RPC" ] && break; sleep 0.05; done
  [ -S "$SOCK" ] || { cat "$WORK/$name.log"; die "the $name broker did not start"; }
  oha -n 2000 -c 8 --no-tui -m POST -H 'content-type: application/json' -d "$BODY" \
    --unix-socket "$SOCK" http://localhost/v1/chat/completions >/dev/null
}

# load NAME CONC [KEY]: one oha run; prints "rps p50_ms p99_ms non2xx".
load() {
  local name="$1" c="$2" key="${3:-}" auth=()
  [ -n "$key" ] && auth=(-H "authorization: Bearer $key")
  oha -z "${SECS}s" -c "$c" --no-tui --output-format json -m POST -H 'content-type: application/json' \
    "${auth[@]}" -d "$BODY" --unix-socket "$SOCK" http://localhost/v1/chat/completions >"$OUT/store-$name-$c.json"
  python3 - "$OUT/store-$name-$c.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
p = r["latencyPercentiles"]
codes = r.get("statusCodeDistribution", {})
bad = sum(v for k, v in codes.items() if not k.startswith("2"))
print(f'{r["summary"]["requestsPerSec"]:.0f} {p["p50"] * 1000:.3f} {p["p99"] * 1000:.3f} {bad}')
PY
}

declare -A RES
start_broker sqlite "$WORK/bench.db"
for c in $CONC; do RES[sqlite-$c]="$(load sqlite "$c")"; done
start_broker postgres "$(pg_createdb broker_bench)"
for c in $CONC; do RES[postgres-$c]="$(load postgres "$c")"; done
# A key with a budget far beyond the run: every request reserves from the lease.
SECRET="$(curl -s --unix-socket "$RPC" http://localhost/rpc \
  -d '{"jsonrpc":"2.0","id":1,"method":"keys.create","params":{"params":{"name":"bench","budget_usd":1000000}}}' \
  | python3 -c 'import json,sys; print(json.load(sys.stdin)["result"]["secret"])')"
for c in $CONC; do RES[leased-$c]="$(load leased "$c" "$SECRET")"; done

echo
printf '%-38s %4s | %10s %9s %9s | %s\n' store conc rps "p50 ms" "p99 ms" "non-2xx"
for what in sqlite postgres leased; do
  case "$what" in
    sqlite) label="SQLite, keyless" ;;
    postgres) label="PostgreSQL, keyless" ;;
    leased) label="PostgreSQL, key with a budget (lease)" ;;
  esac
  for c in $CONC; do
    read -r rps p50 p99 bad <<<"${RES[$what-$c]}"
    printf '%-38s %4s | %10s %9s %9s | %s\n' "$label" "$c" "$rps" "$p50" "$p99" "$bad"
  done
done
