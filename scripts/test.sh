#!/usr/bin/env bash
# The whole suite: lint and types, then the tests on SQLite, then the database tests on PostgreSQL.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=.venv

"$VENV/bin/ruff" check boltgate tests bench
"$VENV/bin/ruff" format --check boltgate tests bench
"$VENV/bin/mypy"

# The browser tests drive Debian's Chromium and read QR codes with zbar: install them when missing.
missing=()
command -v chromium >/dev/null 2>&1 || missing+=(chromium fonts-dejavu-core)
command -v zbarimg >/dev/null 2>&1 || missing+=(zbar-tools)
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  echo "== installing ${missing[*]} (Debian packages)"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# PostgreSQL must be up for the second run (it is on machines of this kind; start it if it is down).
if ! pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null; then
  if command -v pg_ctlcluster >/dev/null 2>&1; then
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n 1)" main start || true
  fi
  for _ in $(seq 1 30); do pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null && break; sleep 1; done
fi

# The peers some tests run (a Nostr relay, LNbits) live in virtualenvs of their own, built once
# here so that the two runs below never build them at the same time.
echo "== test peers (built on first use)"
bash scripts/relay-venv.sh
"$VENV/bin/python" -c "from tests.lightning.fakes.lnbits_server import ensure_lnbits; ensure_lnbits()"

# The whole suite on SQLite and the database tests on PostgreSQL run side by side (the machine has
# 2 cores and each run waits on I/O much of the time: ~8 min instead of ~13); each run's output is
# printed when both are over, and either failing fails the suite.
logs=$(mktemp -d)
trap 'rm -rf "$logs"' EXIT
echo "== tests on SQLite, and the database tests on PostgreSQL (side by side)"
BOLTGATE_TEST_DATABASE=sqlite "$VENV/bin/pytest" -q -p no:cacheprovider "$@" >"$logs/sqlite" 2>&1 &
sqlite_pid=$!
BOLTGATE_TEST_DATABASE=postgresql "$VENV/bin/pytest" -q -p no:cacheprovider -m db "$@" >"$logs/postgresql" 2>&1 &
postgresql_pid=$!
sqlite_rc=0; wait "$sqlite_pid" || sqlite_rc=$?
postgresql_rc=0; wait "$postgresql_pid" || postgresql_rc=$?
echo "== tests on SQLite (exit $sqlite_rc)"
cat "$logs/sqlite"
echo "== database tests on PostgreSQL (exit $postgresql_rc)"
cat "$logs/postgresql"
[ "$sqlite_rc" = 0 ] && [ "$postgresql_rc" = 0 ]
