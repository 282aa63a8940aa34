#!/usr/bin/env bash
# Prints the package index that pip uses: PIP_INDEX_URL, else pip's config, else pip's default.
set -euo pipefail
PYTHON=${PYTHON:-python3}
if [ -n "${PIP_INDEX_URL:-}" ]; then echo "$PIP_INDEX_URL"; exit 0; fi
url=$("$PYTHON" -m pip config get global.index-url 2>/dev/null || true)
if [ -n "$url" ]; then echo "$url"; exit 0; fi
"$PYTHON" -c 'from pip._internal.models.index import PyPI; print(PyPI.simple_url)'
