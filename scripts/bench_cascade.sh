#!/usr/bin/env bash
# The cascade hop: what one child broker in front of a mother costs. A mother (release build,
# `--mother`, TCP on loopback) in front of the fake provider, and a child (Unix sockets only)
# whose model is served through that mother; oha drives the mother's rest.sock, then the
# child's, at each concurrency, JSON and streamed. The difference is one broker plus one
# loopback TCP hop. Run by scripts/bench.sh; alone:
#   BENCH_SECS=5 BENCH_CASCADE_CONC="1 32" scripts/bench_cascade.sh
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$REPO"
SECS="${BENCH_SECS:-5}"
CONC="${BENCH_CASCADE_CONC:-1 32}"
OUT="$REPO/target/bench"
mkdir -p "$OUT"
export PATH="$HOME/.cargo/bin:$PATH"
command -v oha >/dev/null 2>&1 || cargo install oha --locked --quiet
cargo build --release --locked --quiet -p hero_aibroker_server -p hero_aibroker_testkit --bins

WORK="$(mktemp -d)"
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT
TOKEN="bench-cascade-token-0123456789"
PORT="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"

target/release/hero_aibroker_fake_provider --port 0 >"$WORK/fake.out" 2>&1 &
PIDS+=($!)
FAKE_URL="$(fake_url "$WORK/fake.out")"
[ -n "$FAKE_URL" ] || die "the fake provider did not start"

bench_models "$WORK/mother.yml" "$FAKE_URL"
# The child's own backend for the model is unreachable and last: the mother serves it.
cat >"$WORK/child.yml" <<YAML
providers:
  - {name: nowhere, base_url: "http://127.0.0.1:9/v1"}
models:
  bench:
    display_name: Bench
    tier: standard
    context_window: 8192
    backends:
      - {provider: nowhere, model_id: bench-up, priority: 9, input_cost: 2.5, output_cost: 10}
YAML

FAKE_KEY=bench-key RUST_LOG=warn HERO_SOCKET_DIR="$WORK/mother" DATABASE_URL="$WORK/mother.db" \
  HERO_AIBROKER_CASCADE_TOKEN="$TOKEN" \
  target/release/hero_aibroker_server --models-config "$WORK/mother.yml" --mother \
  --address 127.0.0.1 --port "$PORT" >"$WORK/mother.log" 2>&1 &
PIDS+=($!)
RUST_LOG=warn HERO_SOCKET_DIR="$WORK/child" DATABASE_URL="$WORK/child.db" \
  target/release/hero_aibroker_server --models-config "$WORK/child.yml" >"$WORK/child.log" 2>&1 &
PIDS+=($!)
M="$WORK/mother/hero_aibroker/rest.sock"; C="$WORK/child/hero_aibroker/rest.sock"
for _ in $(seq 1 200); do [ -S "$M" ] && [ -S "$WORK/child/hero_aibroker/rpc.sock" ] && break; sleep 0.05; done
[ -S "$M" ] && [ -S "$C" ] || { cat "$WORK"/*.log; die "the brokers did not start"; }
curl -s --unix-socket "$WORK/child/hero_aibroker/rpc.sock" http://localhost/rpc \
  -d "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"mothers.add\",\"params\":{\"address\":\"127.0.0.1\",\"port\":$PORT,\"priority\":1,\"token\":\"$TOKEN\"}}" \
  | grep -q '"success":true' || die "cannot register the mother"
BODY='{"model":"bench","messages":[{"role":"user","content":"What is the weather like in San Francisco today?"}]}'
SBODY='{"model":"bench","stream":true,"messages":[{"role":"user","content":"What is the weather like in San Francisco today?"}]}'
curl -s -D - -o /dev/null --unix-socket "$C" http://localhost/v1/chat/completions \
  -H 'content-type: application/json' -d "$BODY" | grep -qi '^x-aibroker-provider: ai_broker_mother-0' \
  || die "the child does not answer through its mother"
for s in "$M" "$C"; do
  oha -n 2000 -c 8 --no-tui -m POST -H 'content-type: application/json' -d "$BODY" \
    --unix-socket "$s" http://localhost/v1/chat/completions >/dev/null
done

printf '%-6s %4s | %12s %16s | %12s %16s | %18s\n' mode conc "mother rps" "p50 / p99 ms" "child rps" "p50 / p99 ms" "added p50 / p99"
for mode in json stream; do
  if [ "$mode" = json ]; then b="$BODY"; else b="$SBODY"; fi
  for c in $CONC; do
    for who in mother child; do
      if [ "$who" = mother ]; then s="$M"; else s="$C"; fi
      oha -z "${SECS}s" -c "$c" --no-tui --output-format json -m POST -H 'content-type: application/json' \
        -d "$b" --unix-socket "$s" http://localhost/v1/chat/completions >"$OUT/cascade-$who-$mode-$c.json"
    done
    python3 - "$OUT/cascade-mother-$mode-$c.json" "$OUT/cascade-child-$mode-$c.json" "$mode" "$c" <<'PY'
import json, sys
m, c = (json.load(open(p)) for p in sys.argv[1:3])
def st(r):
    p = r["latencyPercentiles"]
    ok = sum(v for k, v in r.get("statusCodeDistribution", {}).items() if k.startswith("2"))
    total = sum(r.get("statusCodeDistribution", {}).values())
    if ok != total:
        sys.stderr.write(f"warning: {total - ok} non-2xx replies: {r.get('statusCodeDistribution')}\n")
    return r["summary"]["requestsPerSec"], p["p50"] * 1000, p["p99"] * 1000
mr, m50, m99 = st(m); cr, c50, c99 = st(c)
print(f"{sys.argv[3]:6} {sys.argv[4]:>4} | {mr:12.0f} {m50:7.3f} / {m99:6.3f} | {cr:12.0f} {c50:7.3f} / {c99:6.3f} | {(c50-m50)*1000:7.0f} / {(c99-m99)*1000:6.0f} us")
PY
  done
done
