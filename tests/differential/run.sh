#!/usr/bin/env bash
# Differential run of `tallyman decode` against peers: biip (GS1) and epcpy (EPC TDS).
# Not part of the default test run. Usage: tests/differential/run.sh [N_RANDOM] [SEED]
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
venv="$root/target/differential-venv"
if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q 'biip==5.2.0' 'epcpy==0.1.8'
fi
cargo build --locked --release -p tallyman-agent --bin tallyman --manifest-path "$root/Cargo.toml"
exec "$venv/bin/python" "$root/tests/differential/compare.py" "$root/target/release/tallyman" "$@"
