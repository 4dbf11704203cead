#!/usr/bin/env bash
# Builds the release binaries and installs them in ~/hero/bin (HERO_AIBROKER_INSTALL_DIR to change it), the
# example configuration in ~/hero/cfg when none is there, and the service descriptions in
# ~/hero/share/hero_aibroker/services. With --systemd, also the systemd user units
# (~/.config/systemd/user), then `systemctl --user daemon-reload`; enable them yourself:
#   systemctl --user enable --now hero_aibroker_server hero_aibroker_services hero_aibroker_admin
# (split mode: hero_aibroker_root too). See services/README.md and docs/operations.md.
set -euo pipefail
SYSTEMD=0
for arg in "$@"; do
  case "$arg" in
    --systemd) SYSTEMD=1 ;;
    *) printf 'error: unknown argument %s (install.sh takes only --systemd)\n' "$arg" >&2; exit 1 ;;
  esac
done
set --
source "$(dirname "$0")/lib.sh"
need_cargo
DEST="${HERO_AIBROKER_INSTALL_DIR:-$HOME/hero/bin}"
CFG="$HOME/hero/cfg"
SHARE="$HOME/hero/share/hero_aibroker"
BINS=(hero_aibroker_server hero_aibroker_services hero_aibroker_admin hero_aibroker mcp_ping mcp_broker mcp_hero mcp_serper mcp_serpapi mcp_exa mcp_scraperapi mcp_scrapfly)

if [ -z "${HERO_AIBROKER_SKIP_BUILD:-}" ]; then
  say "building release binaries"
  (cd "$REPO" && cargo build --release --locked --bins \
    -p hero_aibroker_server -p hero_aibroker_services -p hero_aibroker_mcp -p hero_aibroker \
    -p hero_aibroker_admin)
fi
mkdir -p "$DEST" "$CFG" "$SHARE/services"
for bin in "${BINS[@]}"; do
  [ -x "$BIN_DIR/$bin" ] || die "$BIN_DIR/$bin is missing"
  install -m 755 "$BIN_DIR/$bin" "$DEST/$bin"
done
say "installed ${BINS[*]} in $DEST"
[ -f "$CFG/modelsconfig.yml" ] || install -m 644 "$REPO/modelsconfig.yml" "$CFG/modelsconfig.yml"
[ -f "$CFG/mcp_servers.json" ] || install -m 644 "$REPO/mcp_servers.example.json" "$CFG/mcp_servers.json"
[ -f "$CFG/hero_aibroker.env" ] || (umask 077; : >"$CFG/hero_aibroker.env")
install -m 644 "$REPO"/services/*.service "$REPO/services/README.md" "$SHARE/services/"
say "configuration in $CFG (provider keys go in $CFG/hero_aibroker.env, mode 600)"
if [ "$SYSTEMD" = 1 ]; then
  UNITS="$HOME/.config/systemd/user"
  mkdir -p "$UNITS"
  install -m 644 "$REPO"/services/*.service "$UNITS/"
  say "installed the systemd user units in $UNITS"
  if command -v systemctl >/dev/null 2>&1; then
    systemctl --user daemon-reload || say "systemctl --user daemon-reload failed (no user session?)"
  fi
fi
