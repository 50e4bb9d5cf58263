#!/usr/bin/env bash
# fwd-batch.sh WORKTREE LABEL RUNS: chaos:fence with the hold proxy on this helper's stack.
source /work/wt-fence/scripts/fence16/env.sh
cd "$1" || exit 1
timeout -k 10 1500 node build/scripts/kafka-fence.js --runs "$3" --hold-pid-file "$RUNS/proxy.pid" \
  --freeze-ms "${FREEZES:-3500,4000,5000,4500}" --messages 6000 --stall-seconds 30 --workers "${WORKERS:-2}" > "$RUNS/fwd-$2.out" 2> "$RUNS/fwd-$2.err"
echo "exit $?" >> "$RUNS/fwd-$2.out"
