#!/usr/bin/env bash
# run-probe.sh NAME: one probe run (env passes through: HOLD_MS, FENCE_AT_S, DURATION_S, DRAIN_S,
# EXTRA, DEBUG, LANES, RATE, MODE=hold|freeze|none). Output in $RUNS/NAME.
set -uo pipefail
source /work/wt-fence/scripts/fence16/env.sh
name="$1"
dir="$RUNS/$name"
mkdir -p "$dir"
kafka_log="$MKF_STACK_DIR/kafka.log"
start_line=$(wc -l < "$kafka_log")
case "${MODE:-hold}" in
  hold) export HOLD_PID="$(cat "$RUNS/proxy.pid")" ;;
  freeze) export FREEZE_PID="$(cat "$MKF_STACK_DIR/kafka.pid")" ;;
  none) ;;
esac
export LOG_DIR="$dir" TOPIC="f16-$name-$(date +%s)"
timeout -k 5 $(( ${DURATION_S:-60} + ${DRAIN_S:-120} + 60 )) node "$F16/probe.js" > "$dir/probe.jsonl" 2> "$dir/probe.err"
echo "exit $?" >> "$dir/probe.err"
# a frozen Kafka must never be left stopped
[ "${MODE:-hold}" = freeze ] && kill -CONT "$(cat "$MKF_STACK_DIR/kafka.pid")" 2>/dev/null
tail -n +"$((start_line + 1))" "$kafka_log" | grep -E -i "fenc|unfenc|session has timed out|Registered|heartbeat" > "$dir/kafka-fence.log" || true
grep '"summary"' "$dir/probe.jsonl"
