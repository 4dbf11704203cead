#!/usr/bin/env bash
# Stops the hero_aibroker services: SIGTERM (they drain in-flight requests), SIGKILL after 40 s
# (--split: the mother broker hero_aibroker_root too; the demo provider of --demo whenever it runs).
set -euo pipefail
source "$(dirname "$0")/lib.sh"

for entry in "${SERVICES[@]}"; do
  svc="${entry%%:*}"
  if ! pid="$(pid_of "$svc")"; then
    say "$svc is not running"
    rm -f "$RUN_DIR/$svc.pid"
    continue
  fi
  say "stopping $svc (pid $pid)"
  kill -TERM "$pid"
  for _ in $(seq 1 400); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    say "$svc did not stop in 40 s; killing it"
    kill -KILL "$pid" || true
  fi
  rm -f "$RUN_DIR/$svc.pid"
  if [ "$svc" = hero_aibroker_demo ]; then rm -f "$DEMO_URL_FILE"; fi
done
