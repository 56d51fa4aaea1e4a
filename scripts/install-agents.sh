#!/usr/bin/env bash
# Installs the real coding agents that tests/clients runs against the proxy: Claude Code and Codex CLI, at the
# versions pinned in tests/clients/package.json (+ package-lock.json), from npm into tests/clients/node_modules.
# Both ship native binaries in platform packages (optional dependencies); each is run once (--version) to prove
# it works here. Exits non-zero when anything fails: CI must not go on without them.
set -euo pipefail
cd "$(dirname "$0")/../tests/clients"
if ! command -v npm >/dev/null 2>&1; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "install-agents: npm is missing; install Node.js and npm (Debian: apt-get install nodejs npm)" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  flock /tmp/apt.lock sh -c 'apt-get update -qq && apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null'
fi
want=$(node -e 'const d=require("./package.json").dependencies; console.log(Object.entries(d).map(([k,v])=>k+"@"+v).join(" "))')
have=$(node -e '
  const d=require("./package.json").dependencies; const out=[];
  for (const k of Object.keys(d)) { try { out.push(k+"@"+require("./node_modules/"+k+"/package.json").version) } catch (e) {} }
  console.log(out.join(" "))' 2>/dev/null || true)
if [ "$want" != "$have" ] || [ ! -x node_modules/.bin/claude ] || [ ! -x node_modules/.bin/codex ]; then
  echo "install-agents: npm ci ($want)"
  npm ci --no-audit --no-fund --loglevel=error
fi
for bin in claude codex; do
  printf 'install-agents: %s --version: ' "$bin"
  HOME="$(mktemp -d)" DISABLE_AUTOUPDATER=1 timeout 60 "node_modules/.bin/$bin" --version
done
