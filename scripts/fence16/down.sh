#!/usr/bin/env bash
set -uo pipefail
source /work/wt-fence/scripts/fence16/env.sh
scripts/stack down kafka
if [ -f "$RUNS/proxy.pid" ]; then kill "$(cat "$RUNS/proxy.pid")" 2>/dev/null; rm -f "$RUNS/proxy.pid"; fi
