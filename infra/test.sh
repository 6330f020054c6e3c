#!/usr/bin/env bash
# Runs the whole suite with node's test runner (the services must be up: `npm test` sees to it).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
mapfile -t files < <(find test apps packages -path '*/node_modules' -prune -o -name '*.test.ts' -print | sort)
exec node --import tsx --test --test-concurrency=1 --test-reporter=spec "${files[@]}"
