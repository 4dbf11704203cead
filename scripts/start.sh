#!/usr/bin/env bash
# Builds the release binaries and starts the hero_aibroker services in the background: the broker
# (rest.sock, rpc.sock), the MCP aggregator (mcp.sock) with the servers of mcp_servers.json
# (MCP_CONFIG_PATH; without one, mcp_servers.example.json: the bundled servers only) and the web
# console (admin.sock, and http://$HERO_AIBROKER_ADMIN_HTTP for a browser, default
# 127.0.0.1:8088; set it empty for the socket only).
# Sockets: $HERO_SOCKET_DIR/hero_aibroker/ (default ~/hero/var/sockets/hero_aibroker/)
# Logs:    ~/hero/var/log/hero_aibroker/<service>.log    PIDs: ~/hero/var/run/hero_aibroker/
# Provider keys and settings come from the environment, or from a .env file at the repository
# root (KEY=value lines; see docs/configuration.md; HERO_AIBROKER_ENV_FILE names another).
# HERO_AIBROKER_PROFILE=debug runs the debug binaries instead of the release ones;
# HERO_AIBROKER_SKIP_BUILD=1 runs the binaries as they are, without building.
# --split also runs a mother broker (service hero_aibroker_root: its own socket directory
# $HERO_SOCKET_DIR/hero_aibroker_root, its own store, `--mother --address 127.0.0.1 --port
# $HERO_AIBROKER_ROOT_PORT` (33850)) and registers it on the broker (the child) as mother
# `split-mode-mother`, priority 1, with the cascade token (docs/operations.md).
# --demo also runs the scripted fake provider (service hero_aibroker_demo, loopback TCP,
# HERO_AIBROKER_DEMO_PORT or a free port) and gives it to the broker as provider `demo`
# (DEMO_BASE_URL): every model of the models file answers offline, without provider keys, with
# scripted text; /v1/models marks models only the demo serves (`demo: true`).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
need_cargo

if [ -f "$ENV_FILE" ]; then
  say "loading $ENV_FILE"
  set -a; source "$ENV_FILE"; set +a
fi
MODELS="${MODELS_CONFIG_PATH:-$REPO/modelsconfig.yml}"
MCP="${MCP_CONFIG_PATH:-$REPO/mcp_servers.json}"
[ -f "$MCP" ] || MCP="$REPO/mcp_servers.example.json"

if [ -n "${HERO_AIBROKER_SKIP_BUILD:-}" ]; then
  say "using the $PROFILE binaries as built (HERO_AIBROKER_SKIP_BUILD)"
else
  say "building $PROFILE binaries"
  if [ "$PROFILE" = release ]; then release=(--release); else release=(); fi
  (cd "$REPO" && cargo build "${release[@]}" --locked --bins \
    -p hero_aibroker_server -p hero_aibroker_services -p hero_aibroker_mcp -p hero_aibroker \
    -p hero_aibroker_admin)
  if [ "$DEMO" = 1 ]; then
    (cd "$REPO" && cargo build "${release[@]}" --locked -p hero_aibroker_testkit --bin hero_aibroker_fake_provider)
  fi
fi
bins=(hero_aibroker_server hero_aibroker_services hero_aibroker_admin hero_aibroker mcp_ping mcp_broker mcp_hero mcp_serper mcp_serpapi mcp_exa mcp_scraperapi mcp_scrapfly)
if [ "$DEMO" = 1 ]; then bins+=(hero_aibroker_fake_provider); fi
for bin in "${bins[@]}"; do
  [ -x "$BIN_DIR/$bin" ] || die "$BIN_DIR/$bin is missing: build it first (cargo build)"
done
ADMIN_HTTP="${HERO_AIBROKER_ADMIN_HTTP-127.0.0.1:8088}"

mkdir -p "$LOG_DIR" "$RUN_DIR"
if [ "$SPLIT" = 1 ]; then
  if [ -z "${HERO_AIBROKER_CASCADE_TOKEN:-}" ]; then
    if [ ! -s "$CASCADE_TOKEN_FILE" ]; then
      (umask 077; od -An -tx1 -N24 /dev/urandom | tr -d ' \n' >"$CASCADE_TOKEN_FILE")
    fi
    HERO_AIBROKER_CASCADE_TOKEN="$(cat "$CASCADE_TOKEN_FILE")"
  fi
  export HERO_AIBROKER_CASCADE_TOKEN
  mkdir -p "$(dirname "$ROOT_DB")"
fi
"$BIN_DIR/hero_aibroker_server" --models-config "$MODELS" --check \
  || die "the configuration is invalid (see the message above)"
"$BIN_DIR/hero_aibroker_services" --mcp-config "$MCP" --check \
  || die "$MCP is invalid (see the message above)"

for entry in "${SERVICES[@]}"; do
  svc="${entry%%:*}"; sock="$(sock_of "${entry#*:}")"
  if pid="$(pid_of "$svc")"; then
    say "$svc already running (pid $pid)"
    if [ "$svc" = hero_aibroker_demo ]; then
      DEMO_BASE_URL="$(cat "$DEMO_URL_FILE")"; export DEMO_BASE_URL
    fi
    continue
  fi
  say "starting $svc"
  if [ "$svc" = hero_aibroker_demo ]; then
    out="$RUN_DIR/demo.out"
    : >"$out"
    nohup "$BIN_DIR/hero_aibroker_fake_provider" --port "${HERO_AIBROKER_DEMO_PORT:-0}" \
      >"$out" 2>>"$LOG_DIR/$svc.log" </dev/null &
    echo $! >"$RUN_DIR/$svc.pid"
    DEMO_BASE_URL="$(fake_url "$out")"
    [ -n "$DEMO_BASE_URL" ] || { tail -n 20 "$LOG_DIR/$svc.log" >&2; die "$svc did not start"; }
    echo "$DEMO_BASE_URL" >"$DEMO_URL_FILE"
    export DEMO_BASE_URL
    say "$svc (the scripted fake provider, provider demo) listening on $DEMO_BASE_URL"
    continue
  fi
  case "$svc" in
    hero_aibroker_services) args=(--socket-dir "$SOCKET_ROOT" --mcp-config "$MCP") ;;
    hero_aibroker_root)
      args=(--socket-dir "$ROOT_SOCKET_ROOT" --models-config "$MODELS" --db "$ROOT_DB"
            --mother --address 127.0.0.1 --port "$ROOT_PORT") ;;
    hero_aibroker_admin)
      args=(--socket-dir "$SOCKET_ROOT")
      if [ -n "$ADMIN_HTTP" ]; then args+=(--http "$ADMIN_HTTP"); fi ;;
    *) args=(--socket-dir "$SOCKET_ROOT" --models-config "$MODELS") ;;
  esac
  bin="$svc"; [ "$svc" = hero_aibroker_root ] && bin=hero_aibroker_server
  nohup "$BIN_DIR/$bin" "${args[@]}" \
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
if [ "$SPLIT" = 1 ]; then
  cli=("$BIN_DIR/hero_aibroker" --socket-dir "$SOCKET_ROOT")
  if "${cli[@]}" mothers list --json | grep -q '"label": *"split-mode-mother"'; then
    say "the mother is already registered on the child"
  else
    "${cli[@]}" mothers add 127.0.0.1 "$ROOT_PORT" --label split-mode-mother --priority 1 \
      --token-env HERO_AIBROKER_CASCADE_TOKEN \
      || die "cannot register the mother on the child"
    say "registered the mother (127.0.0.1:$ROOT_PORT) on the child as split-mode-mother"
  fi
fi
echo
echo "Try:  curl --unix-socket $SOCKET_DIR/rest.sock http://localhost/v1/models"
echo "      curl --unix-socket $SOCKET_DIR/rest.sock http://localhost/mcp/tools"
echo "      $BIN_DIR/hero_aibroker doctor"
if [ -n "$ADMIN_HTTP" ]; then echo "Console: http://$ADMIN_HTTP/"; fi
if [ "$DEMO" = 1 ]; then
  echo "Demo: provider demo (scripted answers) serves every model without keys; try"
  echo "      $BIN_DIR/hero_aibroker chat -m gpt-4o-mini"
fi
