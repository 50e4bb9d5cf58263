#!/usr/bin/env bash
# digest.sh NAME: the librdkafka events that matter for issue 16, per lane.
source /work/wt-fence/scripts/fence16/env.sh >/dev/null
dir="$RUNS/$1"
cat "$dir/kafka-fence.log" | cut -c1-220
for f in "$dir"/lane*.log; do
  echo "== $f"
  grep -E "DESTROY|Decommission|TERMINATE|REBOOTSTRAP|re-bootstrap|Skipping metadata|no usable|brokers, [0-9]+ topics|Broker changed state|DRAIN|drain|QRYLEADER|leader -?[0-9]+ epoch|METADATAUPDATE|ALL_BROKERS|brokers are down|bumped|IDEMPSTATE|Timed out|PID" "$f" \
    | grep -v "Sent \|Received Produce" | cut -c1-260 | awk '{ if (++n[$0 ~ /QRYLEADER/] < 400) print }' | head -${LINES_MAX:-150}
done
