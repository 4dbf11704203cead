# Shared paths and helpers for the hero_aibroker scripts. Sourced, not run.
# shellcheck shell=bash

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SOCKET_ROOT="${HERO_SOCKET_DIR:-$HOME/hero/var/sockets}"
SOCKET_DIR="$SOCKET_ROOT/hero_aibroker"
LOG_DIR="${HERO_AIBROKER_LOG_DIR:-$HOME/hero/var/log/hero_aibroker}"
RUN_DIR="${HERO_AIBROKER_RUN_DIR:-$HOME/hero/var/run/hero_aibroker}"
# Which build start.sh runs: release (the default, built by start.sh) or debug (the test
# suite's smoke run uses the binaries it already built).
PROFILE="${HERO_AIBROKER_PROFILE:-release}"
case "$PROFILE" in
  release) BIN_DIR="$REPO/target/release" ;;
  debug) BIN_DIR="$REPO/target/debug" ;;
  *) printf 'error: HERO_AIBROKER_PROFILE must be release or debug, not %s\n' "$PROFILE" >&2; exit 1 ;;
esac
# The settings file start.sh loads (KEY=value lines), when it exists.
ENV_FILE="${HERO_AIBROKER_ENV_FILE:-$REPO/.env}"
# The services start.sh runs, with the socket each one answers on.
SERVICES=("hero_aibroker_server:rest.sock" "hero_aibroker_services:mcp.sock" "hero_aibroker_admin:admin.sock")

# Split mode (`--split` to start.sh, stop.sh, status.sh): a second broker, the mother, runs as
# service hero_aibroker_root with its own socket directory and store and a TCP listener on
# 127.0.0.1:$HERO_AIBROKER_ROOT_PORT (default 33850); the broker above becomes its child.
SPLIT=0
# Demo mode (`--demo` to start.sh, stop.sh, status.sh): the scripted fake provider runs as
# service hero_aibroker_demo on 127.0.0.1:$HERO_AIBROKER_DEMO_PORT (default: a free port) and the
# broker gets it as provider `demo` (DEMO_BASE_URL), which backs every model of the models file
# after its real backends, so a first run without provider keys works offline.
DEMO=0
for arg in "$@"; do
  case "$arg" in
    --split) SPLIT=1 ;;
    --demo) DEMO=1 ;;
    *) printf 'error: unknown argument %s (the scripts take --split and --demo)\n' "$arg" >&2; exit 1 ;;
  esac
done
# Where the demo provider's URL is kept while it runs.
DEMO_URL_FILE="$RUN_DIR/demo.url"

ROOT_SOCKET_ROOT="$SOCKET_ROOT/hero_aibroker_root"
ROOT_PORT="${HERO_AIBROKER_ROOT_PORT:-33850}"
ROOT_DB="${HERO_AIBROKER_ROOT_DB:-$HOME/hero/var/hero_aibroker_root/hero_aibroker.db}"
# The cascade token the child presents to the mother: HERO_AIBROKER_CASCADE_TOKEN, else one
# generated once and kept (mode 600) in the run directory.
CASCADE_TOKEN_FILE="$RUN_DIR/cascade.token"
if [ "$SPLIT" = 1 ]; then
  SERVICES=("hero_aibroker_root:$ROOT_SOCKET_ROOT/hero_aibroker/rest.sock" "${SERVICES[@]}")
fi

# The socket path of a SERVICES entry's socket (a name in $SOCKET_DIR, or an absolute path).
sock_of() {
  case "$1" in
    /*) echo "$1" ;;
    *) echo "$SOCKET_DIR/$1" ;;
  esac
}

say() { printf '\033[1m==>\033[0m %s\n' "$*"; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

need_cargo() {
  command -v cargo >/dev/null 2>&1 || die "cargo is not installed: install the Rust toolchain (rustup) first"
}

# The base URL a fake provider prints on the stdout it was started with (file $1), waiting up
# to 5 s for its `listening URL` line; empty when it did not come.
fake_url() {
  for _ in $(seq 1 100); do grep -q '^listening ' "$1" 2>/dev/null && break; sleep 0.05; done
  sed -n 's/^listening //p' "$1"
}

pid_of() { # service -> pid if running
  local f="$RUN_DIR/$1.pid"
  [ -f "$f" ] || return 1
  local pid; pid="$(cat "$f")"
  kill -0 "$pid" 2>/dev/null || return 1
  echo "$pid"
}

# A running demo provider counts without --demo too (stop.sh stops it, start.sh keeps using it).
if [ "$DEMO" = 0 ] && pid_of hero_aibroker_demo >/dev/null; then DEMO=1; fi
# The demo provider has no socket: `-` (its URL is in $DEMO_URL_FILE).
if [ "$DEMO" = 1 ]; then
  SERVICES=("hero_aibroker_demo:-" "${SERVICES[@]}")
fi

# bench_models FILE FAKE_URL [SLOW_URL]: the benchmarks' models file: one model `bench` served by
# the fake provider at FAKE_URL as `bench-up` (key from FAKE_KEY), priced 2.5 / 10 USD per million
# tokens; with SLOW_URL also `bench-slow`, the same from the fake provider there (key SLOW_KEY).
bench_models() {
  {
    echo "providers:"
    echo "  - {name: fake, base_url: \"$2\", api_key_env: FAKE_KEY}"
    [ -n "${3:-}" ] && echo "  - {name: slow, base_url: \"$3\", api_key_env: SLOW_KEY}"
    cat <<YAML
models:
  bench:
    display_name: Bench
    tier: standard
    context_window: 8192
    backends:
      - {provider: fake, model_id: bench-up, priority: 1, input_cost: 2.5, output_cost: 10}
YAML
    [ -n "${3:-}" ] && cat <<YAML
  bench-slow:
    display_name: Bench (paced)
    tier: standard
    context_window: 8192
    backends:
      - {provider: slow, model_id: bench-up, priority: 1, input_cost: 2.5, output_cost: 10}
YAML
    true
  } >"$1"
}
