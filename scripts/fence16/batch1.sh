#!/usr/bin/env bash
# Short holds (fence ~0.1-2 s while the broker serves), probe with 2 lanes.
cd /work/wt-fence/scripts/fence16
for h in 3300 3500 3800 4200 5000 3400; do
  MODE=hold HOLD_MS=$h FENCE_AT_S=8 DURATION_S=30 DRAIN_S=150 ./run-probe.sh "short-$h" 
done
