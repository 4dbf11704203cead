#!/usr/bin/env bash
# Benchmark: the release broker in front of the fake provider, driven over rest.sock by oha
# (installed with cargo if missing), compared with oha straight to the fake provider.
# Prints, for non-streaming and streaming chat at each concurrency: requests/s, p50/p99 through
# the broker and direct, the added latency, server CPU time per request and peak RSS.
#
#   scripts/bench.sh                   # 5 s per run, concurrency 1 32 64 128, the broker's RSS under
#                                      # 128 concurrent streams, the summary against issue 23's
#                                      # targets (also written into docs/performance.md between its
#                                      # bench:summary markers; BENCH_WRITE_DOCS=0 leaves it), then
#                                      # the ledger bench (and SQLite beside PostgreSQL:
#                                      # scripts/bench_store.sh)
#   BENCH_SECS=10 BENCH_CONC="1 32" scripts/bench.sh
#   BENCH_LOG=info scripts/bench.sh    # with the per-request log line on (default: warn)
#   BENCH_SERVER=/path/to/hero_aibroker_server scripts/bench.sh --profile
#                                      # another build of the server (e.g. an older commit's), to
#                                      # compare two builds in one sitting; the docs are not written
#   scripts/bench.sh --quick           # 2 s per run at concurrency 1 and 32, the broker table and
#                                      # its RSS only (run by scripts/test.sh after the tests;
#                                      # informational, never a pass/fail gate)
#   scripts/bench.sh --profile         # where the broker's CPU goes: perf samples the server during
#                                      # 10 s of JSON and of streamed load at concurrency 32 and
#                                      # prints its time by category (HTTP, JSON, upstream client,
#                                      # runtime, allocation, ledger, logging, kernel, ...); the raw
#                                      # `perf report` lands in target/bench/perf-*.txt
# Then the ledger throughput and the routing-decision micro-benchmark (criterion); the latter
# alone: cargo bench -p hero_aibroker_lib --bench routing -- --warm-up-time 1 --measurement-time 3
set -euo pipefail
QUICK=0
PERF=0
case "${1:-}" in
  --quick) QUICK=1; shift ;;
  --profile) PERF=1; shift ;;
esac
source "$(dirname "$0")/lib.sh"
need_cargo
cd "$REPO"

if [ "$QUICK" = 1 ]; then
  SECS="${BENCH_SECS:-2}"
  CONC="${BENCH_CONC:-1 32}"
elif [ "$PERF" = 1 ]; then
  SECS="${BENCH_SECS:-10}"
  CONC="${BENCH_CONC:-32}"
else
  SECS="${BENCH_SECS:-5}"
  CONC="${BENCH_CONC:-1 32 64 128}"
fi
LOGLEVEL="${BENCH_LOG:-warn}"
OUT="$REPO/target/bench"
mkdir -p "$OUT"

if ! command -v oha >/dev/null 2>&1; then
  say "installing oha (load generator) with cargo"
  cargo install oha --locked --quiet
fi
export PATH="$HOME/.cargo/bin:$PATH"

say "building release binaries"
cargo build --release --locked --quiet -p hero_aibroker_server -p hero_aibroker_testkit --bins

WORK="$(mktemp -d)"
cleanup() {
  [ -n "${SERVER_PID:-}" ] && kill -TERM "$SERVER_PID" 2>/dev/null || true
  [ -n "${FAKE_PID:-}" ] && kill -TERM "$FAKE_PID" 2>/dev/null || true
  [ -n "${SLOW_PID:-}" ] && kill -TERM "$SLOW_PID" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

target/release/hero_aibroker_fake_provider --port 0 >"$WORK/fake.out" 2>"$WORK/fake.log" &
FAKE_PID=$!
FAKE_URL="$(fake_url "$WORK/fake.out")"
[ -n "$FAKE_URL" ] || die "fake provider did not start"

# A second fake provider that paces its stream events (20 ms apart, so a stream stays open for
# about 0.7 s): the model `bench-slow`, for the broker's memory under many open streams.
SLOW_URL=""
if [ "$QUICK" = 0 ] && [ "$PERF" = 0 ]; then
  target/release/hero_aibroker_fake_provider --port 0 --chunk-delay-ms 20 >"$WORK/slow.out" 2>"$WORK/slow.log" &
  SLOW_PID=$!
  SLOW_URL="$(fake_url "$WORK/slow.out")"
  [ -n "$SLOW_URL" ] || die "the paced fake provider did not start"
fi
bench_models "$WORK/models.yml" "$FAKE_URL" "$SLOW_URL"

SERVER_BIN="${BENCH_SERVER:-target/release/hero_aibroker_server}"
FAKE_KEY=bench-key SLOW_KEY=bench-key RUST_LOG="$LOGLEVEL" HERO_SOCKET_DIR="$WORK/sockets" DATABASE_URL="$WORK/bench.db" \
  "$SERVER_BIN" --models-config "$WORK/models.yml" >"$WORK/server.log" 2>&1 &
SERVER_PID=$!
SOCK="$WORK/sockets/hero_aibroker/rest.sock"
for _ in $(seq 1 100); do [ -S "$SOCK" ] && break; sleep 0.05; done
[ -S "$SOCK" ] || { cat "$WORK/server.log"; die "server did not start"; }

BODY='{"model":"bench","messages":[{"role":"user","content":"What is the weather like in San Francisco today?"}]}'
SBODY='{"model":"bench","stream":true,"messages":[{"role":"user","content":"What is the weather like in San Francisco today?"}]}'
DIRECT_BODY="${BODY/\"bench\"/\"bench-up\"}"
DIRECT_SBODY="${SBODY/\"bench\"/\"bench-up\"}"

cpu_ticks() { awk '{print $14 + $15}' "/proc/${1:-$SERVER_PID}/stat"; }
# Peak RSS since the last reset_peak (KiB); reset_peak starts a new peak from the current RSS.
peak_kb() { awk '/VmHWM/ {print $2}' "/proc/$SERVER_PID/status"; }
rss_kb() { awk '/VmRSS/ {print $2}' "/proc/$SERVER_PID/status"; }
reset_peak() { echo 5 >"/proc/$SERVER_PID/clear_refs" 2>/dev/null || true; }

run_oha() { # name conc body target... -> json file
  local name="$1" conc="$2" body="$3"; shift 3
  oha -z "${SECS}s" -c "$conc" --no-tui --output-format json -m POST \
    -H 'content-type: application/json' -H 'authorization: Bearer bench-key' -d "$body" "$@" \
    >"$OUT/$name.json"
}

# Warm up connections and caches.
oha -n 2000 -c 8 --no-tui -m POST -H 'content-type: application/json' -d "$BODY" \
  --unix-socket "$SOCK" http://localhost/v1/chat/completions >/dev/null

RESULTS="$OUT/results.tsv"
printf 'mode\tconc\tbroker_rps\tbroker_p50_ms\tbroker_p99_ms\tdirect_rps\tdirect_p50_ms\tdirect_p99_ms\tcpu_us_per_req\tdirect_cpu_us_per_req\tpeak_rss_kb\n' >"$RESULTS"
# Concurrency outermost: the allocator keeps some of what a heavier point touched, so each
# point's peak RSS is measured after the lighter points only (JSON and stream at c=32 before
# anything at c=64).
for c in $CONC; do
  for mode in json stream; do
    if [ "$mode" = json ]; then b="$BODY"; d="$DIRECT_BODY"; else b="$SBODY"; d="$DIRECT_SBODY"; fi
    say "$mode c=$c: direct to the fake provider"
    f0="$(cpu_ticks "$FAKE_PID")"
    run_oha "direct-$mode-$c" "$c" "$d" "$FAKE_URL/chat/completions"
    f1="$(cpu_ticks "$FAKE_PID")"
    say "$mode c=$c: through the broker"
    if [ "$PERF" = 1 ]; then
      command -v perf >/dev/null 2>&1 || die "perf is missing (apt-get install linux-perf)"
      perf record -q -F 999 -p "$SERVER_PID" -o "$OUT/perf-$mode.data" -- sleep "$SECS" 2>/dev/null &
      PERF_PID=$!
    fi
    reset_peak
    t0="$(cpu_ticks)"
    run_oha "broker-$mode-$c" "$c" "$b" --unix-socket "$SOCK" http://localhost/v1/chat/completions
    t1="$(cpu_ticks)"
    if [ "$PERF" = 1 ]; then
      wait "$PERF_PID" || true
      perf report -q -i "$OUT/perf-$mode.data" --no-children --sort dso,symbol --stdio \
        >"$OUT/perf-$mode.txt" 2>/dev/null
    fi
    python3 - "$OUT/broker-$mode-$c.json" "$OUT/direct-$mode-$c.json" "$mode" "$c" "$((t1 - t0))" "$(getconf CLK_TCK)" "$((f1 - f0))" "$(peak_kb)" >>"$RESULTS" <<'PY'
import json, sys
b, d = (json.load(open(p)) for p in sys.argv[1:3])
mode, conc, ticks, hz = sys.argv[3], sys.argv[4], int(sys.argv[5]), int(sys.argv[6])
direct_ticks, peak_kb = int(sys.argv[7]), int(sys.argv[8])
def stats(r):
    s = r["summary"]; p = r["latencyPercentiles"]
    ok = sum(v for k, v in r.get("statusCodeDistribution", {}).items() if k.startswith("2"))
    return s["requestsPerSec"], p["p50"] * 1000, p["p99"] * 1000, ok
brps, bp50, bp99, bok = stats(b)
drps, dp50, dp99, dok = stats(d)
total = sum(b.get("statusCodeDistribution", {}).values())
if bok != total:
    sys.stderr.write(f"warning: {total - bok} non-2xx replies through the broker: {b.get('statusCodeDistribution')}\n")
cpu_us = ticks / hz * 1e6 / max(bok, 1)
direct_cpu_us = direct_ticks / hz * 1e6 / max(dok, 1)
print(f"{mode}\t{conc}\t{brps:.0f}\t{bp50:.3f}\t{bp99:.3f}\t{drps:.0f}\t{dp50:.3f}\t{dp99:.3f}\t{cpu_us:.1f}\t{direct_cpu_us:.1f}\t{peak_kb}")
PY
  done
done

# Memory under many open streams (full run): 128 concurrent streams from the paced fake provider,
# the broker's RSS sampled every 250 ms; steady = the median of the second half, peak = VmHWM.
STREAMS_RSS=""
if [ -n "$SLOW_URL" ]; then
  say "RSS under 128 concurrent streams (paced upstream, $((SECS * 2)) s)"
  reset_peak
  before="$(rss_kb)"
  oha -z "$((SECS * 2))s" -c 128 --no-tui --output-format json -m POST \
    -H 'content-type: application/json' -d "${SBODY/\"bench\"/\"bench-slow\"}" \
    --unix-socket "$SOCK" http://localhost/v1/chat/completions >"$OUT/broker-streams128.json" &
  OHA_PID=$!
  : >"$WORK/rss.txt"
  while kill -0 "$OHA_PID" 2>/dev/null; do rss_kb >>"$WORK/rss.txt"; sleep 0.25; done
  wait "$OHA_PID" || true
  STREAMS_RSS="$(python3 - "$WORK/rss.txt" "$before" "$(peak_kb)" "$OUT/broker-streams128.json" <<'PY'
import json, statistics, sys
samples = [int(x) for x in open(sys.argv[1]).read().split()]
half = samples[len(samples) // 2:] or samples
r = json.load(open(sys.argv[4]))
ok = sum(v for k, v in r.get("statusCodeDistribution", {}).items() if k.startswith("2"))
print(f"{int(sys.argv[2])}\t{int(statistics.median(half))}\t{int(sys.argv[3])}\t{ok}\t{r['summary']['requestsPerSec']:.0f}")
PY
)"
fi

echo
python3 "$REPO/scripts/bench_summary.py" "$RESULTS" "$STREAMS_RSS"
echo "raw oha reports: $OUT/"

ROWS="$(python3 - "$WORK/bench.db" <<'PY'
import sqlite3, sys
print(sqlite3.connect(sys.argv[1]).execute("select count(*) from request_logs").fetchone()[0])
PY
)"
echo "ledger rows recorded by the broker during the run: $ROWS"
if [ "$QUICK" = 1 ]; then
  echo "(quick run: informational; scripts/bench.sh without --quick runs everything)"
  exit 0
fi
if [ "$PERF" = 0 ] && [ -z "${BENCH_SERVER:-}" ] && [ "${BENCH_WRITE_DOCS:-1}" != 0 ]; then
  python3 "$REPO/scripts/bench_summary.py" "$RESULTS" "$STREAMS_RSS" --write "$REPO/docs/performance.md" | tail -1
fi
if [ "$PERF" = 1 ]; then
  for mode in json stream; do
    echo
    echo "where the broker's CPU goes, $mode at c=$CONC (perf, self time by category; raw: $OUT/perf-$mode.txt)"
    python3 "$REPO/scripts/perf_categories.py" "$OUT/perf-$mode.txt"
  done
  exit 0
fi

say "ledger throughput (SQLite, release)"
cargo run --release --locked --quiet -p hero_aibroker_lib --example ledger_bench

say "routing decisions (criterion: 50 models x 5 backends x 4 keys)"
# CRITERION_HOME keeps these results apart from any other criterion run in target/criterion.
CRITERION_HOME="$OUT/criterion" cargo bench --locked --quiet -p hero_aibroker_lib --bench routing -- \
  --warm-up-time 1 --measurement-time 3 >"$OUT/routing.txt" 2>&1 \
  || { cat "$OUT/routing.txt"; die "routing benchmark failed"; }
python3 - "$OUT/criterion" <<'PY'
import json, pathlib, sys
root = pathlib.Path(sys.argv[1])
rows = []
for est in sorted(root.glob("**/new/estimates.json")):
    bench = json.loads((est.parent / "benchmark.json").read_text())
    m = json.loads(est.read_text())["median"]
    ci = m["confidence_interval"]
    rows.append((bench["full_id"], m["point_estimate"], ci["lower_bound"], ci["upper_bound"]))
def us(ns):
    return f"{ns / 1000:.2f} us"
print(f"{'case':34} {'median':>12} {'95% CI':>25}  <= 10 us")
for name, med, lo, hi in rows:
    print(f"{name:34} {us(med):>12} {us(lo):>12} - {us(hi):>10}  {'yes' if med <= 10_000 else 'NO'}")
PY
echo "criterion output: $OUT/routing.txt"

say "the cascade hop (a child broker in front of a mother over loopback TCP)"
bash "$REPO/scripts/bench_cascade.sh"

say "the console at scale (a seeded ledger)"
bash "$REPO/scripts/bench_console.sh"

say "the store: SQLite beside PostgreSQL (ledger throughput, broker latency, budget leases)"
bash "$REPO/scripts/bench_store.sh"
