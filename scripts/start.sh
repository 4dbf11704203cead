#!/usr/bin/env bash
# Builds the release binaries and starts the hero_aibroker services in the background.
# Sockets: $HERO_SOCKET_DIR/hero_aibroker/ (default ~/hero/var/sockets/hero_aibroker/)
# Logs:    ~/hero/var/log/hero_aibroker/<service>.log    PIDs: ~/hero/var/run/hero_aibroker/
# Provider keys and settings come from the environment, or from a .env file at the repository
# root (KEY=value lines; see docs/configuration.md).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
need_cargo

if [ -f "$REPO/.env" ]; then
  say "loading $REPO/.env"
  set -a; source "$REPO/.env"; set +a
fi
MODELS="${MODELS_CONFIG_PATH:-$REPO/modelsconfig.yml}"

say "building release binaries"
(cd "$REPO" && cargo build --release --locked --bins -p hero_aibroker_server)

mkdir -p "$LOG_DIR" "$RUN_DIR"
"$REPO/target/release/hero_aibroker_server" --models-config "$MODELS" --check \
  || die "the configuration is invalid (see the message above)"

for entry in "${SERVICES[@]}"; do
  svc="${entry%%:*}"; sock="$SOCKET_DIR/${entry#*:}"
  if pid="$(pid_of "$svc")"; then
    say "$svc already running (pid $pid)"
    continue
  fi
  say "starting $svc"
  nohup "$REPO/target/release/$svc" --socket-dir "$SOCKET_ROOT" --models-config "$MODELS" \
    >>"$LOG_DIR/$svc.log" 2>&1 </dev/null &
  echo $! >"$RUN_DIR/$svc.pid"
  for _ in $(seq 1 100); do
    [ -S "$sock" ] && break
    kill -0 "$(cat "$RUN_DIR/$svc.pid")" 2>/dev/null || { tail -n 20 "$LOG_DIR/$svc.log" >&2; die "$svc exited at start"; }
    sleep 0.1
  done
  [ -S "$sock" ] || die "$svc did not open $sock (see $LOG_DIR/$svc.log)"
  say "$svc listening on $sock (log: $LOG_DIR/$svc.log)"
done
echo
echo "Try:  curl --unix-socket $SOCKET_DIR/rest.sock http://localhost/v1/models"
