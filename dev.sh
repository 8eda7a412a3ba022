#!/usr/bin/env bash
# ShareChain developer entry point: installs what it needs into ./.venv, then runs.
#   ./dev.sh devnet [options]   local devnet with the demo world and the HTTP API
#   ./dev.sh test [pytest args] the test suite (slow soak runs excluded)
#   ./dev.sh soak               the slow fault-injection runs only
#   ./dev.sh sharechain ...     any CLI command inside the venv
set -euo pipefail
cd "$(dirname "$0")"
VENV=.venv
PY=${PYTHON:-python3}

ensure_venv() {
  if [ ! -x "$VENV/bin/python" ]; then
    echo "creating $VENV ..." >&2
    "$PY" -m venv "$VENV"
  fi
  if [ ! -f "$VENV/.installed" ] || [ pyproject.toml -nt "$VENV/.installed" ]; then
    echo "installing ShareChain and its dependencies into $VENV ..." >&2
    "$VENV/bin/python" -m pip install -q --upgrade pip
    "$VENV/bin/python" -m pip install -q -e ".[test]"
    touch "$VENV/.installed"
  fi
}

cmd=${1:-help}
[ $# -gt 0 ] && shift
case "$cmd" in
  devnet)
    ensure_venv
    exec "$VENV/bin/sharechain" devnet "$@" ;;
  test)
    ensure_venv
    "$VENV/bin/ruff" check sharechain tests benchmarks
    exec "$VENV/bin/python" -m pytest -n 2 -m "not slow" "$@" ;;
  soak)
    ensure_venv
    exec "$VENV/bin/python" -m pytest -n 2 -m slow "$@" ;;
  sharechain)
    ensure_venv
    exec "$VENV/bin/sharechain" "$@" ;;
  *)
    sed -n '2,7p' "$0"
    exit 2 ;;
esac
