#!/usr/bin/env bash
# Runs the whole test suite, installing what it needs: formatting and lint checks, the Rust
# unit and end-to-end tests (real binaries on temp sockets against the fake provider), the wire
# tests with the official OpenAI, Anthropic and MCP Python SDKs (in a venv under target/), real
# coding agents (Claude Code, Codex) from npm, and the console in a real browser.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
need_cargo
cd "$REPO"
# A whole-suite run is a one-off build: incremental caches would only add gigabytes to the disk.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"

say "cargo fmt --check"
cargo fmt --all -- --check

say "cargo clippy (warnings are errors)"
cargo clippy --locked --workspace --all-targets -- -D warnings

say "building"
cargo build --locked --workspace --all-targets

say "crate graph: only the server links the core"
for crate in hero_aibroker_services hero_aibroker_mcp hero_aibroker hero_aibroker_admin hero_aibroker_sdk hero_aibroker_host hero_aibroker_examples; do
  if cargo tree --locked -e normal -p "$crate" | grep -q hero_aibroker_lib; then
    die "$crate depends on hero_aibroker_lib (cargo tree -e normal -p $crate); it must reach the broker through the SDK"
  fi
done

say "MCP test servers (tests/mcp: @modelcontextprotocol/server-everything, for the aggregation e2e test)"
if ! command -v npm >/dev/null 2>&1; then
  apt-get update -qq && apt-get install -y -qq nodejs npm
fi
if [ ! -x tests/mcp/node_modules/.bin/mcp-server-everything ] \
  || [ tests/mcp/package-lock.json -nt tests/mcp/node_modules/.package-lock.json ]; then
  (cd tests/mcp && npm ci --no-audit --no-fund --loglevel=error)
fi

# A server given in HERO_AIBROKER_PG_SERVER (postgres://…/postgres, a role that may create
# databases) is used as it is; the outage test, which stops its server, then needs one of its
# own: HERO_AIBROKER_PG_OUTAGE_SERVER with HERO_AIBROKER_PG_STOP and HERO_AIBROKER_PG_START
# (shell commands), or it says it did not run.
source "$REPO/scripts/pg.sh"
trap pg_stop EXIT
if [ -n "${HERO_AIBROKER_PG_SERVER:-}" ]; then
  say "PostgreSQL for the shared-store tests: the one given ($(printf '%s' "$HERO_AIBROKER_PG_SERVER" | sed -E 's#(://[^:/@]*):[^@]*@#\1:***@#'))"
else
  say "PostgreSQL for the shared-store tests (Debian's postgresql: throwaway clusters on Unix sockets)"
  pg_start
  export HERO_AIBROKER_PG_OUTAGE_SERVER="$PG_URL" HERO_AIBROKER_PG_STOP="$PG_STOP_CMD" \
    HERO_AIBROKER_PG_START="$PG_START_CMD"
  pg_start
  export HERO_AIBROKER_PG_SERVER="$PG_URL"
  echo "PostgreSQL: $HERO_AIBROKER_PG_SERVER (and one the outage test stops: $HERO_AIBROKER_PG_OUTAGE_SERVER)"
fi
PG_URL="$HERO_AIBROKER_PG_SERVER"

say "audio tools for the speech tests (Debian's espeak-ng speaks, sox measures)"
if ! command -v espeak-ng >/dev/null 2>&1 || ! command -v sox >/dev/null 2>&1; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq espeak-ng sox >/dev/null
fi

say "Rust tests"
export HERO_AIBROKER_REQUIRE_PG=1
STORE_TESTS=(-p hero_aibroker_lib --test store_ledger --test store_rollup --test store_circuits --test store_shared --test ledger_writer)
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --locked --workspace --no-fail-fast
  say "the store and ledger tests again, on PostgreSQL"
  HERO_AIBROKER_TEST_PG="$PG_URL" cargo nextest run --locked --no-fail-fast "${STORE_TESTS[@]}" -E 'not test(/^sqlite_/)'
else
  cargo test --locked --workspace --no-fail-fast
  say "the store and ledger tests again, on PostgreSQL"
  HERO_AIBROKER_TEST_PG="$PG_URL" cargo test --locked --no-fail-fast "${STORE_TESTS[@]}" -- --skip sqlite_
fi

say "operator scripts: start.sh, status.sh, stop.sh with an env file, against the fake provider"
bash scripts/smoke_scripts.sh

say "openrpc.json against an independent validator (@open-rpc/schema-utils-js)"
bash scripts/validate_openrpc.sh

say "coding agents from npm (tests/agents: Claude Code and Codex CLI, driven by tests/python/test_agents.py)"
if [ ! -x tests/agents/node_modules/.bin/claude ] || [ ! -x tests/agents/node_modules/.bin/codex ] \
  || [ tests/agents/package-lock.json -nt tests/agents/node_modules/.package-lock.json ]; then
  (cd tests/agents && npm ci --no-audit --no-fund --loglevel=error)
fi

say "Python wire tests (official OpenAI, Anthropic and MCP SDKs; Claude Code and Codex)"
VENV="$REPO/target/pyvenv"
command -v python3 >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq python3 python3-venv; }
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV" || { apt-get update -qq && apt-get install -y -qq python3-venv && python3 -m venv "$VENV"; }
fi
"$VENV/bin/pip" install --quiet --disable-pip-version-check -r tests/python/requirements.txt
HERO_BIN_DIR="$REPO/target/debug" "$VENV/bin/python" -m pytest -q tests/python

say "browser tests of the console (Debian's chromium, driven by playwright-core)"
if ! command -v chromium >/dev/null 2>&1; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium
fi
if [ ! -d tests/browser/node_modules/playwright-core ] \
  || [ tests/browser/package-lock.json -nt tests/browser/node_modules/.package-lock.json ]; then
  (cd tests/browser && npm ci --no-audit --no-fund --loglevel=error)
fi
HERO_BIN_DIR="$REPO/target/debug" CHROMIUM="$(command -v chromium)" node --test tests/browser/
echo "screenshots: $REPO/target/browser-results/"

say "quick benchmark (informational: the broker's added latency, throughput and RSS beside the fake provider; never fails the suite)"
if [ -n "${HERO_AIBROKER_SKIP_BENCH:-}" ]; then
  echo "skipped (HERO_AIBROKER_SKIP_BENCH is set)"
else
  bash scripts/bench.sh --quick || echo "the quick benchmark did not complete (informational: the suite passed)"
fi
