#!/usr/bin/env bash
# Checks, offline and without installing anything, that poetry.lock agrees with every
# pyproject.toml. `make init` runs it before installing; `make quality` and tests/test_lock.py
# run it too. Exit 0: they agree. Exit 1: they disagree (stderr says what and that
# `make lock` fixes it). Exit 2: it cannot check (no poetry).
#
# Two parts, because `poetry check --lock` alone compares only the root pyproject.toml with
# the lock's content-hash: a dependency added to packages/*/pyproject.toml or
# projects/*/pyproject.toml changes nothing there, and `poetry sync` then installs the old
# lock as it is (and removes the new package if pip had installed it).
#   1. `poetry check --lock`: the root pyproject.toml against the content-hash.
#   2. every path package in poetry.lock (packages/*, projects/*): the dependencies and Python
#      versions that the lock recorded for it against its pyproject.toml now, both read with
#      poetry's own parser (poetry-core, from the interpreter that runs poetry).
# POETRY (the executable) may come from the environment; else .tools/poetry/bin/poetry, else PATH.
set -euo pipefail
cd "$(dirname "$0")/.."

POETRY=${POETRY:-}
if [ -z "$POETRY" ]; then
  if [ -x .tools/poetry/bin/poetry ]; then
    POETRY=.tools/poetry/bin/poetry
  else
    POETRY=$(command -v poetry || true)
  fi
fi
if [ -z "$POETRY" ] || ! command -v "$POETRY" >/dev/null 2>&1; then
  echo "error: poetry not found (.tools/poetry/bin/poetry or on PATH); run 'make init'" >&2
  exit 2
fi
if [ -z "${POETRY_PYPI_MIRROR_URL:-}" ]; then
  POETRY_PYPI_MIRROR_URL=$(bash scripts/pip-index.sh)
  export POETRY_PYPI_MIRROR_URL
fi

fix() {
  echo "fix: run 'make lock' (poetry lock, then poetry sync into .venv; it needs the package" >&2
  echo "     index), then commit poetry.lock together with the pyproject.toml you edited." >&2
}

# 1. The root pyproject.toml (poetry's own message says `poetry lock`; `make lock` runs that).
status=0
if ! out=$("$POETRY" check --lock --no-interaction 2>&1); then
  if grep -qi "poetry.lock" <<<"$out"; then
    echo "error: poetry.lock does not agree with pyproject.toml:" >&2
  else
    echo "error: 'poetry check --lock' found problems:" >&2
  fi
  sed 's/^/  /' <<<"$out" >&2
  status=1
fi
root_status=$status

# 2. The path packages. The interpreter that runs poetry has poetry-core: the python next to
# the poetry script (a virtual environment: .tools/, pipx, the official installer), else the
# one its #! line names.
poetry_python() {
  local script line py
  script=$(command -v "$POETRY")
  script=$(readlink -f "$script" 2>/dev/null || echo "$script")
  for py in "$(dirname "$script")/python" "$(dirname "$script")/python3"; do
    [ -x "$py" ] && { echo "$py"; return; }
  done
  line=$(head -n1 "$script" 2>/dev/null || true)
  if [[ $line == '#!'* ]]; then
    read -r -a words <<<"${line#\#!}"
    if [[ ${words[0]:-} == */env ]]; then echo "${words[1]:-}"; else echo "${words[0]:-}"; fi
  fi
}
PY=$(poetry_python)
if [ -z "$PY" ] || ! "$PY" -c 'import poetry.core' >/dev/null 2>&1; then
  echo "warning: cannot find the Python that runs $POETRY; only the root pyproject.toml was" >&2
  echo "         checked against poetry.lock, not packages/*/ and projects/*/pyproject.toml." >&2
  [ "$status" = 0 ] || fix
  exit "$status"
fi

"$PY" - <<'PY' || status=$(( $? > status ? $? : status ))
import sys
from pathlib import Path

try:
    import tomllib
except ImportError:  # Python < 3.11 runs poetry: poetry depends on tomli there
    import tomli as tomllib

from poetry.core.constraints.version import parse_constraint
from poetry.core.factory import Factory


def key(dep):
    """What the lock records of a dependency, in a form that ignores spelling and order."""
    extras = tuple(sorted(dep.extras))
    return (dep.name, str(dep.constraint), extras, str(dep.marker), dep.is_optional())


def show(key):
    name, constraint, extras, marker, optional = key
    text = name + (f"[{','.join(extras)}]" if extras else "") + f" {constraint}"
    return text + (f" ; {marker}" if marker else "") + (" (optional)" if optional else "")


def problems(root):
    lock = tomllib.loads((root / "poetry.lock").read_text(encoding="utf-8"))
    found = []
    for info in lock.get("package", []):
        source = info.get("source", {})
        if source.get("type") != "directory":
            continue
        where = root / source["url"]
        rel = (where / "pyproject.toml").relative_to(root)
        if not (where / "pyproject.toml").is_file():
            found.append(f"poetry.lock has {info['name']} from {source['url']}/, without {rel}")
            continue
        try:
            package = Factory().create_poetry(where).package
        except Exception as err:  # a pyproject.toml that poetry cannot read is a problem too
            found.append(f"{rel}: poetry cannot read it: {err}")
            continue
        locked = [
            Factory.create_dependency(name, constraint, root_dir=where)
            for name, constraints in info.get("dependencies", {}).items()
            for constraint in (constraints if isinstance(constraints, list) else [constraints])
        ]
        now = {key(d) for d in package.requires}
        then = {key(d) for d in locked}
        found += [f"{rel}: {show(k)} is not in poetry.lock" for k in sorted(now - then)]
        found += [f"{rel}: poetry.lock still has {show(k)}" for k in sorted(then - now)]
        python_then = str(parse_constraint(info.get("python-versions", "*")))
        python_now = str(parse_constraint(package.python_versions))
        if python_then != python_now:
            found.append(f"{rel}: requires Python {python_now}, poetry.lock has {python_then}")
    return found


try:
    found = problems(Path.cwd())
except Exception as err:  # a bug here must not read as "the lock disagrees"
    print(f"error: could not compare poetry.lock with the path packages: {err!r}", file=sys.stderr)
    sys.exit(2)
if found:
    print("error: poetry.lock does not agree with these pyproject.toml files:", file=sys.stderr)
    for problem in found:
        print(f"  {problem}", file=sys.stderr)
    sys.exit(1)
PY
if [ "$status" = 1 ] || [ "$root_status" = 1 ]; then fix; fi
exit "$status"
