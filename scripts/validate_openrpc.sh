#!/usr/bin/env bash
# Validates crates/hero_aibroker_sdk/openrpc.json with the OpenRPC project's own library
# (@open-rpc/schema-utils-js, pinned in tests/openrpc/package-lock.json): meta-schema, $refs,
# and every example's params. Needs node >= 18 and npm; packages come from the npm registry.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

command -v node >/dev/null 2>&1 || die "node is not installed: install Node.js 18 or newer (with npm)"
command -v npm >/dev/null 2>&1 || die "npm is not installed: install it with Node.js"

cd "$REPO/tests/openrpc"
say "npm ci (tests/openrpc)"
npm ci --no-audit --no-fund --loglevel=error
say "validating openrpc.json"
node validate.mjs
