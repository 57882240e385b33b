#!/usr/bin/env bash
# Build .venv-relay: a virtualenv holding the Nostr relay (nostr-relay from PyPI) that
# tests/agent/test_relays.py publishes to. It lives apart from .venv because the relay pins its own
# SQLAlchemy, pydantic, uvicorn... which must never disturb the gateway's requirements.lock.
#
# Idempotent: a stamp holding the lock file's sha256 is written last, so a build that was cut short
# or an outdated lock triggers a (re)install, and an up-to-date venv returns at once.
# A fresh build takes about 25-45 s on the 2-core machine (download included).
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=.venv-relay
LOCK=tests/agent/relay-requirements.lock
STAMP="$VENV/.lock-sha256"

want=$(sha256sum "$LOCK" | cut -d' ' -f1)
if [ -x "$VENV/bin/nostr-relay" ] && [ "$(cat "$STAMP" 2>/dev/null)" = "$want" ]; then
  exit 0
fi

mkdir -p "$VENV"
# Keep git from listing the venv without touching the shared .gitignore.
printf '*\n' > "$VENV/.gitignore"
# Two test runs starting together must not build the same venv at once.
exec 9>"$VENV/.build.lock"
flock 9
if [ -x "$VENV/bin/nostr-relay" ] && [ "$(cat "$STAMP" 2>/dev/null)" = "$want" ]; then
  exit 0
fi

echo "== building $VENV from $LOCK" >&2
rm -f "$STAMP"
python3 -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet --no-input --disable-pip-version-check -r "$LOCK"
echo "$want" > "$STAMP"
