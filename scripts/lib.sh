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

say() { printf '\033[1m==>\033[0m %s\n' "$*"; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

need_cargo() {
  command -v cargo >/dev/null 2>&1 || die "cargo is not installed: install the Rust toolchain (rustup) first"
}

pid_of() { # service -> pid if running
  local f="$RUN_DIR/$1.pid"
  [ -f "$f" ] || return 1
  local pid; pid="$(cat "$f")"
  kill -0 "$pid" 2>/dev/null || return 1
  echo "$pid"
}
