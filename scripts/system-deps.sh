#!/usr/bin/env bash
# Debian packages the tests need: bubblewrap (the grading sandbox),
# chromium + chromium-driver (the browser tests) and postgresql (the test of a
# gradebook on PostgreSQL starts its own server on 127.0.0.1) and npm (the course hub's
# proxy). Installed when missing and when we may (root, or passwordless sudo);
# otherwise we say what is missing. Then configurable-http-proxy from npm
# (scripts/hub-deps.sh), whatever happened before.
set -u
trap 'bash "$(dirname "$0")/hub-deps.sh"' EXIT
need=()
command -v bwrap >/dev/null 2>&1 || need+=(bubblewrap)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v chromedriver >/dev/null 2>&1 || need+=(chromium-driver)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null 2>&1 \
    || need+=(postgresql)
command -v npm >/dev/null 2>&1 || need+=(npm)
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -eq 0 ]; then
    sudo=""
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    sudo="sudo -n"
else
    echo "system-deps: missing ${need[*]}; install them (apt-get install ${need[*]})," >&2
    echo "system-deps: or the sandbox, browser and PostgreSQL tests will skip." >&2
    exit 0
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${need[@]}"
