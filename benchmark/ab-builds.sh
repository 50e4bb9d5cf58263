#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# A/B of builds: the same benchmark run against the forwarder built from each commit, alternating
# (A B C, then C B A, ...), one JSON line per run on stdout. Needs a running broker stack (for
# example the test stack: MQTT_PORT=18830 KAFKA_PORT=19092 scripts/stack up) and a built tree here
# (its benchmark/cli.js is the load generator for every subject).
#
#   benchmark/ab-builds.sh --reps 2 --qos 1,0,2 --messages 200000 cf7d487 6909f48 HEAD
#
# A subject `<commit>+headers` runs that build with `kafka.headers: {}` on the mapping (MQTT
# topic, QoS and retain as Kafka headers; the load sends no MQTT 5 properties), so headers off
# and on are compared in one alternating run: `... 982a79e HEAD HEAD+headers`.
#
# Each commit is cloned into a temporary folder, given this tree's node_modules (copied) and
# built; every run is bounded by the benchmark's own --timeout.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=../scripts/lib/node-runtime.sh
source scripts/lib/node-runtime.sh && mkf_use_image_node
repo=$PWD
reps=2 qos_list=1 messages=200000 topics=8
while [ $# -gt 0 ]; do
  case "$1" in
    --reps) reps=$2; shift 2 ;;
    --qos) qos_list=$2; shift 2 ;;
    --messages) messages=$2; shift 2 ;;
    --topics) topics=$2; shift 2 ;;
    *) break ;;
  esac
done
[ $# -ge 1 ] || { echo "usage: $0 [--reps n] [--qos 1,0,2] [--messages n] [--topics n] commit..." >&2; exit 2; }
mqtt_port=${MQTT_PORT:-18830} kafka_port=${KAFKA_PORT:-19092}
work=$(mktemp -d /tmp/mkf-ab.XXXX)
trees=() variants=()
for subject in "$@"; do
  c=${subject%%+*} variant=""
  [ "$subject" != "$c" ] && variant=${subject#*+}
  case "$variant" in "" | headers) ;; *) echo "unknown variant +$variant (only +headers)" >&2; exit 2 ;; esac
  sha=$(git rev-parse --short "$c")
  t="$work/$sha"
  if [ ! -d "$t" ]; then
    git clone -q "$repo" "$t" && git -C "$t" checkout -q "$sha"
    cp -a "$repo/node_modules" "$t/"
    mkdir -p "$t/native/hard-exit" && cp -a "$repo/native/hard-exit/build" "$t/native/hard-exit/"
    (cd "$t" && npx tsc -p tsconfig.json)
    echo "built $sha in $t" >&2
  fi
  trees+=("$t") variants+=("$variant")
done

run_one() { # tree variant qos messages
  local tree=$1 variant=$2 qos=$3 n=$4 d pid extra="" label
  label=$(basename "$tree")${variant:++$variant}
  [ "$variant" = headers ] && extra=", headers: {}"

  d=$(mktemp -d "$work/run.XXXX")
  cat > "$d/config.yaml" <<YAML
mqtt: { host: 127.0.0.1, port: $mqtt_port, client_id: "" }
kafka: { bootstrap_server: 127.0.0.1, port: $kafka_port }
forwarding:
  - name: bench
    mqtt: { topic: "benchmark/#", qos: $qos }
    kafka: { topic: benchmark$extra }
http: { host: 127.0.0.1, port: 0 }
log_level: info
YAML
  node "$tree/bin/forwarder.js" --config "$d/config.yaml" > "$d/fwd.log" 2>&1 &
  pid=$!
  for _ in $(seq 1 150); do
    grep -q '"mqtt subscribed"' "$d/fwd.log" && grep -q 'kafka producer connected' "$d/fwd.log" && break
    sleep 0.2
  done
  sleep 1
  node "$repo/build/benchmark/cli.js" --mqtt "127.0.0.1:$mqtt_port" --kafka "127.0.0.1:$kafka_port" \
    --messages "$n" --qos "$qos" --topics "$topics" --forwarder-pid "$pid" --json --timeout 300 \
    --out "$d" 2> "$d/report.txt" | tail -1 > "$d/result.json" || true
  kill -TERM "$pid"
  wait "$pid" || true
  node -e '
    const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
    const f = r.forwarder, c = r.counts, t = r.throughput, l = r.latencyMs;
    console.log(JSON.stringify({ build: process.argv[2], qos: +process.argv[3],
      msgS: Math.round(t.endToEndMsgS), steadyMsgS: Math.round(t.steadyMsgS), lost: c.lost,
      duplicates: c.duplicates, outOfOrder: c.outOfOrder,
      cpuUsPerMsg: +(f.cpuS * 1e6 / c.unique).toFixed(1), rssMaxMb: Math.round(f.rssMaxMb),
      p50Ms: Math.round(l.p50), p99Ms: Math.round(l.p99) }));
  ' "$d/result.json" "$label" "$qos" || echo "{\"build\":\"$label\",\"error\":\"no result in $d\"}"
}

for ((rep = 1; rep <= reps; rep++)); do
  IFS=, read -ra qs <<< "$qos_list"
  for q in "${qs[@]}"; do
    n=$messages
    [ "$q" = 2 ] && n=$((messages / 2))
    order=()
    for ((i = 0; i < ${#trees[@]}; i++)); do order+=("$i"); done
    if (( rep % 2 == 0 )); then
      order=()
      for ((i = ${#trees[@]} - 1; i >= 0; i--)); do order+=("$i"); done
    fi
    for i in "${order[@]}"; do run_one "${trees[$i]}" "${variants[$i]}" "$q" "$n"; done
  done
done
rm -rf "$work"
