#!/usr/bin/env bash
# Set up .venv/ with the test requirements and run every test.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh requirements-dev.txt
exec .venv/bin/python -m pytest -q "$@"
