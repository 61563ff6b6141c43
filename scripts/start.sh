#!/usr/bin/env bash
# Set up .venv/ and analyse the bundled sample course.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh requirements.txt
exec .venv/bin/python -m monitor analyze sample_images --treatment-date 2026-03-02 \
  --json sample_images_analysis.json
