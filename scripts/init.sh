#!/usr/bin/env bash
# Sets up everything from nothing: poetry (project-local when not on PATH), .venv from the
# lock file, and the pre-commit hooks. A second run only checks and takes seconds.
#   scripts/init.sh          (make init) install .venv from poetry.lock as it is; stops, changing
#                            nothing, when poetry.lock disagrees with a pyproject.toml
#   scripts/init.sh --lock   (make lock, make new-project) poetry lock first: after a
#                            dependency was added to, changed in or removed from a pyproject.toml
set -euo pipefail
cd "$(dirname "$0")/.."

case "${1:-}" in
  "") LOCK=0 ;;
  --lock) LOCK=1 ;;
  *) echo "usage: scripts/init.sh [--lock]" >&2; exit 2 ;;
esac

PYTHON=${PYTHON:-python3}
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  echo "error: litforge needs Python >= 3.11; '$PYTHON' is $("$PYTHON" --version 2>&1 || echo missing)." >&2
  echo "       Install Python 3.11+ and run 'make init PYTHON=python3.11'." >&2
  exit 1
fi

# Poetry: the one on PATH if any, else a private copy under .tools/ (no sudo, nothing global).
TOOLS=.tools/poetry
if [ -x "$TOOLS/bin/poetry" ]; then
  POETRY="$TOOLS/bin/poetry"
elif command -v poetry >/dev/null 2>&1; then
  POETRY=$(command -v poetry)
else
  echo "==> installing poetry into $TOOLS"
  "$PYTHON" -m venv "$TOOLS"
  "$TOOLS/bin/pip" install --quiet "poetry>=2.0,<3" poetry-plugin-pypi-mirror
  POETRY="$TOOLS/bin/poetry"
fi
# The mirror plugin makes poetry read the same package index that pip uses; on a normal
# machine that is PyPI itself and nothing changes.
if ! "$POETRY" self show plugins 2>/dev/null | grep -q pypi-mirror; then
  if [ "$POETRY" = "$TOOLS/bin/poetry" ]; then
    "$TOOLS/bin/pip" install --quiet poetry-plugin-pypi-mirror
  else
    "$POETRY" self add poetry-plugin-pypi-mirror
  fi
fi
POETRY_PYPI_MIRROR_URL=$(bash scripts/pip-index.sh)
export POETRY_PYPI_MIRROR_URL

# .venv from the lock file; skipped when the lock and the pyproject.toml files have not changed
# since the last install (the stamp holds their hash).
stamp=.venv/.litforge-installed
lock_hash() {
  cat poetry.lock pyproject.toml packages/*/pyproject.toml projects/*/pyproject.toml |
    sha256sum | cut -d' ' -f1
}
install() {
  local hash
  hash=$(lock_hash)
  "$POETRY" env use "$PYTHON" >/dev/null
  "$POETRY" sync --no-interaction --compile
  echo "$hash" > "$stamp"
}

if [ "$LOCK" = 1 ]; then
  echo "==> poetry lock: poetry.lock from the pyproject.toml files (needs the package index)"
  # Without a .venv, poetry lock would create one with its own choice of Python.
  [ -x .venv/bin/python ] || "$POETRY" env use "$PYTHON" >/dev/null
  "$POETRY" lock --no-interaction
  echo "==> installing .venv from poetry.lock"
  install
else
  # Before the stamp is trusted or anything is installed: `poetry sync` installs the lock as
  # it is, so a stale lock would drop a new dependency (and remove it, if pip installed it).
  if ! POETRY="$POETRY" bash scripts/check-lock.sh; then
    echo "make init stopped before installing: nothing was installed or removed, .venv is as it was." >&2
    exit 1
  fi
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$(lock_hash)" ] && [ -x .venv/bin/python ]; then
    echo "==> .venv is up to date with poetry.lock"
  else
    echo "==> installing .venv from poetry.lock (first time: a few minutes, torch is large)"
    install
  fi
fi

# Pre-commit hooks (local hooks, run from .venv).
if [ -d .git ]; then
  .venv/bin/pre-commit install --install-hooks >/dev/null
  echo "==> pre-commit hooks installed"
fi
echo "==> ready: run 'make test'"
