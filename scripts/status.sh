#!/usr/bin/env bash
# Shows whether each hero_aibroker service runs, its socket, and its /health answer
# (--split: the mother broker hero_aibroker_root too).
set -uo pipefail
source "$(dirname "$0")/lib.sh"

rc=0
for entry in "${SERVICES[@]}"; do
  svc="${entry%%:*}"; sock="$(sock_of "${entry#*:}")"
  if pid="$(pid_of "$svc")" && [ "$sock" = - ]; then
    url="$(cat "$DEMO_URL_FILE" 2>/dev/null)"
    printf '%-24s running  pid %-8s %s\n' "$svc" "$pid" "$url"
    if command -v curl >/dev/null 2>&1; then
      printf '  models: %s\n' "$(curl -s --max-time 3 "$url/models" | head -c 120 || echo 'no answer')"
    fi
  elif pid="$(pid_of "$svc")"; then
    printf '%-24s running  pid %-8s %s\n' "$svc" "$pid" "$sock"
    if command -v curl >/dev/null 2>&1; then
      printf '  health: %s\n' "$(curl -s --max-time 3 --unix-socket "$sock" http://localhost/health || echo 'no answer')"
    fi
  else
    printf '%-24s stopped\n' "$svc"
    rc=3
  fi
done
exit $rc
