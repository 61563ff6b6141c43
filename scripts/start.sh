#!/usr/bin/env bash
# Set up .venv/ and start the clinic app on the demo clinic built from sample_images/
# (first start: about a minute to analyse the sample course). Open http://localhost:8501.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh requirements.txt
exec .venv/bin/python -m monitor.cli.clinic demo --data data/demo "$@"
