#!/usr/bin/env bash
# configurable-http-proxy (JupyterHub's proxy, from npm) into .hub/, which git
# ignores; the course hub (make hub) and its browser test use it. Needs node
# and npm; without them we say so and leave (the hub's test then skips).
set -u
here="$(cd "$(dirname "$0")/.." && pwd)"
[ -x "$here/.hub/node_modules/.bin/configurable-http-proxy" ] && exit 0
if ! command -v npm >/dev/null 2>&1; then
    echo "hub-deps: npm is missing; install node and npm (apt-get install nodejs npm)" >&2
    echo "hub-deps: for the course hub (make hub) and its browser test." >&2
    exit 0
fi
mkdir -p "$here/.hub"
npm install --prefix "$here/.hub" --no-audit --no-fund --silent "configurable-http-proxy@^4.6"
