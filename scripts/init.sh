#!/usr/bin/env bash
# Sets up everything from nothing: poetry (project-local when not on PATH), .venv from the
# lock file, and the pre-commit hooks. A second run only checks and takes seconds.
set -euo pipefail
cd "$(dirname "$0")/.."

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

# .venv from the lock file; skipped when the lock has not changed since the last install.
stamp=.venv/.litforge-installed
lock_hash=$(cat poetry.lock pyproject.toml packages/*/pyproject.toml projects/*/pyproject.toml | sha256sum | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$lock_hash" ] && [ -x .venv/bin/python ]; then
  echo "==> .venv is up to date with poetry.lock"
else
  echo "==> installing .venv from poetry.lock (first time: a few minutes, torch is large)"
  "$POETRY" env use "$PYTHON" >/dev/null
  "$POETRY" sync --no-interaction --compile
  echo "$lock_hash" > "$stamp"
fi

# Pre-commit hooks (local hooks, run from .venv).
if [ -d .git ]; then
  .venv/bin/pre-commit install --install-hooks >/dev/null
  echo "==> pre-commit hooks installed"
fi
echo "==> ready: run 'make test'"
