#!/usr/bin/env bash
# Runs the operator scripts as an operator would: scripts/start.sh (settings from an env file),
# status.sh, a chat completion through the started broker against the fake provider, stop.sh,
# and status.sh again — in a temporary home, with the debug binaries the suite already built
# (a build of just the service crates would unify features differently and recompile).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$REPO"
command -v curl >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq curl; }

TMP="$(mktemp -d)"
# cargo and rustup stay where they are when HOME moves.
export RUSTUP_HOME="${RUSTUP_HOME:-$HOME/.rustup}" CARGO_HOME="${CARGO_HOME:-$HOME/.cargo}"
export HOME="$TMP/home" HERO_SOCKET_DIR="$TMP/sockets"
export HERO_AIBROKER_LOG_DIR="$TMP/log" HERO_AIBROKER_RUN_DIR="$TMP/run"
export HERO_AIBROKER_PROFILE=debug HERO_AIBROKER_SKIP_BUILD=1 HERO_AIBROKER_ENV_FILE="$TMP/smoke.env"
export HERO_AIBROKER_ADMIN_HTTP=""  # the console on its socket only: no port to collide with
mkdir -p "$HOME"
FAKE_PID=""
cleanup() {
  bash scripts/stop.sh --split >/dev/null 2>&1 || true
  [ -n "$FAKE_PID" ] && kill "$FAKE_PID" 2>/dev/null || true
  rm -rf "$TMP"
}
trap cleanup EXIT
fail() { for f in "$TMP"/log/*.log; do [ -f "$f" ] && { echo "--- $f"; tail -n 30 "$f"; }; done; die "$*"; }

target/debug/hero_aibroker_fake_provider >"$TMP/fake.out" 2>&1 &
FAKE_PID=$!
FAKE_URL="$(fake_url "$TMP/fake.out")"
[ -n "$FAKE_URL" ] || die "the fake provider did not start: $(cat "$TMP/fake.out")"

cat >"$TMP/models.yml" <<YAML
providers:
  - {name: smoke, base_url: "$FAKE_URL", api_key_env: SMOKE_KEYS}
models:
  smoke-chat:
    display_name: Smoke chat
    tier: cheap
    context_window: 8192
    backends:
      - {provider: smoke, model_id: up-smoke, priority: 2, input_cost: 1, output_cost: 2}
YAML
# Only the env file says where the models are: a chat with smoke-chat proves it was loaded.
cat >"$HERO_AIBROKER_ENV_FILE" <<ENV
SMOKE_KEYS=sk-smoke-0123456789
MODELS_CONFIG_PATH=$TMP/models.yml
ENV

bash scripts/start.sh || fail "start.sh failed"
out="$(bash scripts/status.sh)" || fail "status.sh says a service is not running: $out"
grep -q 'hero_aibroker_server .*running' <<<"$out" || fail "status.sh: $out"
grep -q 'hero_aibroker_services .*running' <<<"$out" || fail "status.sh: $out"
grep -q '"status":"ok"' <<<"$out" || fail "status.sh shows no healthy /health: $out"
grep -q 'hero_aibroker_admin .*running' <<<"$out" || fail "status.sh: $out"
page="$(curl -s --max-time 10 --unix-socket "$HERO_SOCKET_DIR/hero_aibroker/admin.sock" http://localhost/models)"
grep -q 'smoke-chat' <<<"$page" || fail "the console's Models page: $page"

answer="$(curl -s --max-time 10 --unix-socket "$HERO_SOCKET_DIR/hero_aibroker/rest.sock" \
  -H 'content-type: application/json' \
  -d '{"model":"smoke-chat","messages":[{"role":"user","content":"hi"}]}' \
  http://localhost/v1/chat/completions)"
grep -q '"object":"chat.completion"' <<<"$answer" || fail "chat through the started broker: $answer"

bash scripts/stop.sh || fail "stop.sh failed"
set +e
out="$(bash scripts/status.sh)"; rc=$?
set -e
[ "$rc" = 3 ] || fail "status.sh after stop.sh exited $rc: $out"
grep -q 'hero_aibroker_server .*stopped' <<<"$out" || fail "status.sh after stop: $out"
[ ! -e "$HERO_SOCKET_DIR/hero_aibroker/rest.sock" ] || fail "rest.sock left behind"
grep -q 'stopped' "$TMP/log/hero_aibroker_server.log" || fail "the broker did not log a clean stop"
say "operator scripts: start, status, chat, console, stop, status — ok"

# Split mode: a mother (hero_aibroker_root, TCP on a free loopback port) and the broker as its
# child, the mother registered on the child (priority 1, ahead of the direct backend at 2); a
# chat through the child is answered via the mother.
HERO_AIBROKER_ROOT_PORT="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
export HERO_AIBROKER_ROOT_PORT HERO_AIBROKER_ROOT_DB="$TMP/root/hero_aibroker.db"
bash scripts/start.sh --split || fail "start.sh --split failed"
out="$(bash scripts/status.sh --split)" || fail "status.sh --split says a service is not running: $out"
grep -q 'hero_aibroker_root .*running' <<<"$out" || fail "status.sh --split: $out"
info="$(target/debug/hero_aibroker --socket-dir "$HERO_SOCKET_DIR" info)"
grep -E 'mothers +. +1 ' <<<"$info" >/dev/null || fail "info on the child does not show the mother: $info"
mothers="$(target/debug/hero_aibroker --socket-dir "$HERO_SOCKET_DIR" mothers list)"
grep -q 'split-mode-mother' <<<"$mothers" || fail "mothers list: $mothers"
headers="$(curl -s -D - -o /dev/null --max-time 10 --unix-socket "$HERO_SOCKET_DIR/hero_aibroker/rest.sock" \
  -H 'content-type: application/json' \
  -d '{"model":"smoke-chat","messages":[{"role":"user","content":"hi"}]}' \
  http://localhost/v1/chat/completions)"
grep -qi '^x-aibroker-provider: ai_broker_mother-0' <<<"$headers" || fail "the child did not answer via the mother: $headers"
bash scripts/start.sh --split >/dev/null || fail "start.sh --split again failed"
count="$(target/debug/hero_aibroker --socket-dir "$HERO_SOCKET_DIR" mothers list --json | grep -c '"id"')"
[ "$count" = 1 ] || fail "a second start.sh --split registered the mother again ($count)"
bash scripts/stop.sh --split || fail "stop.sh --split failed"
set +e
out="$(bash scripts/status.sh --split)"; rc=$?
set -e
[ "$rc" = 3 ] || fail "status.sh --split after stop.sh --split exited $rc: $out"
grep -q 'hero_aibroker_root .*stopped' <<<"$out" || fail "status.sh --split after stop: $out"
say "split mode: start --split, the mother registered, a chat via the mother, stop --split — ok"

# Demo mode: no provider key at all and the shipped models file; start.sh --demo runs the fake
# provider as provider `demo`, so the README's tour answers offline and says it is the demo.
: >"$HERO_AIBROKER_ENV_FILE"
bash scripts/start.sh --demo || fail "start.sh --demo failed"
out="$(bash scripts/status.sh)" || fail "status.sh (the demo running) says a service is not running: $out"
grep -q 'hero_aibroker_demo .*running' <<<"$out" || fail "status.sh does not show the demo provider: $out"
demo_pid="$(cat "$TMP/run/hero_aibroker_demo.pid")"
models="$(curl -s --max-time 10 --unix-socket "$HERO_SOCKET_DIR/hero_aibroker/rest.sock" http://localhost/v1/models/gpt-4o-mini)"
grep -q '"demo":true' <<<"$models" || fail "/v1/models does not mark gpt-4o-mini as served by the demo: $models"
headers="$(curl -s -D - -o "$TMP/demo.json" --max-time 10 --unix-socket "$HERO_SOCKET_DIR/hero_aibroker/rest.sock" \
  -H 'content-type: application/json' \
  -d '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Say hi"}]}' \
  http://localhost/v1/chat/completions)"
grep -qi '^x-aibroker-provider: demo-0' <<<"$headers" || fail "the tour's chat was not answered by the demo: $headers $(cat "$TMP/demo.json")"
grep -q '"object":"chat.completion"' "$TMP/demo.json" || fail "the tour's chat: $(cat "$TMP/demo.json")"
cli="$(target/debug/hero_aibroker --socket-dir "$HERO_SOCKET_DIR" models)"
grep -q 'demo (1×, scripted)' <<<"$cli" || fail "hero_aibroker models does not label the demo: $cli"
page="$(curl -s --max-time 10 --unix-socket "$HERO_SOCKET_DIR/hero_aibroker/admin.sock" http://localhost/models)"
grep -q 'class="badge" title="Only the demo provider serves it' <<<"$page" || fail "the console's Models page does not label the demo"
bash scripts/stop.sh || fail "stop.sh (the demo running) failed"
! kill -0 "$demo_pid" 2>/dev/null || fail "stop.sh left the demo provider running"
[ ! -e "$TMP/run/demo.url" ] || fail "stop.sh left the demo's URL file"
say "demo mode: start --demo without keys, the tour's chat answered by demo, labelled in /v1/models, CLI and console, stop — ok"

# install.sh (with the binaries already built): binaries, configuration, service definitions.
bash scripts/install.sh --systemd >/dev/null || fail "install.sh failed"
for bin in hero_aibroker_server hero_aibroker_services hero_aibroker_admin hero_aibroker; do
  [ -x "$HOME/hero/bin/$bin" ] || fail "install.sh did not install $bin"
done
[ -f "$HOME/hero/cfg/modelsconfig.yml" ] || fail "install.sh did not install the models file"
[ "$(stat -c %a "$HOME/hero/cfg/hero_aibroker.env")" = 600 ] || fail "the env file is not mode 600"
[ -f "$HOME/.config/systemd/user/hero_aibroker_root.service" ] || fail "install.sh --systemd did not install the units"
"$HOME/hero/bin/hero_aibroker_server" --models-config "$HOME/hero/cfg/modelsconfig.yml" --check \
  || fail "the installed server does not accept the installed configuration"
say "install.sh: binaries, configuration, systemd units — ok"
