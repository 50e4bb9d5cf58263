#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# Flame graphs of the forwarder under benchmark load: one page per thread (main and every
# worker) plus all threads combined, as self-contained HTML files to open in a browser.
#
#   benchmark/flamegraph.sh [--perf] [--messages N] [-- <run-matrix options>]
#
# Default mode: node --cpu-prof. Every thread of the forwarder, worker threads included, writes
# a .cpuprofile when it ends (the forwarder is stopped with SIGTERM, so they all do); JavaScript
# frames only, native and kernel time appear as "(program)" / "(garbage collector)".
#
# --perf: Linux perf, system-wide while the cell runs, then only the forwarder's process. Shows
# native frames too (librdkafka's rdk:* threads, libuv, syscalls in the kernel); JavaScript
# frames are named through --perf-basic-prof. Needs `perf` (Debian: linux-perf) and a
# working cpu-clock event; hardware counters are not needed.
#
# The cell is run by benchmark/run-matrix.ts on its own broker stack (same ports and state
# folder as `npm run bench`), default: QoS 1, raw payloads, 200,000 messages. Output:
# benchmark/results/flamegraph-<time>/index.html
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=../scripts/lib/node-runtime.sh
source scripts/lib/node-runtime.sh && mkf_use_image_node

mode=cpuprof
messages=200000
while [ $# -gt 0 ]; do
  case "$1" in
    --perf) mode=perf ;;
    --messages) messages="$2"; shift ;;
    --) shift; break ;;
    -h | --help) sed -n '2,19p' "$0"; exit 0 ;;
    *) echo "flamegraph.sh: unknown option $1 (run-matrix options go after --)" >&2; exit 2 ;;
  esac
  shift
done

out="benchmark/results/flamegraph-$(date -u +%Y%m%dT%H%M%SZ)"
mkdir -p "$out"
out="$(realpath "$out")"
npx tsc -p tsconfig.json

# One QoS 1 raw cell, no ceilings, docs untouched; later arguments override these.
matrix_args=(--qos 1 --wrap off --extra-workers '' --no-half-rate --no-ceilings --no-docs
  --only qos1-raw --messages "$messages" --results-dir "$out/run")

if [ "$mode" = cpuprof ]; then
  node build/benchmark/run-matrix.js "${matrix_args[@]}" \
    --forwarder-node-args "--cpu-prof --cpu-prof-dir=$out/cpuprofile --cpu-prof-interval 500" "$@"
  node build/benchmark/flamegraph.js --cpuprofile-dir "$out/cpuprofile" --out "$out" \
    --title "forwarder, QoS 1, $messages messages (node --cpu-prof)"
else
  command -v perf >/dev/null || { echo "flamegraph.sh: perf not installed (Debian: apt-get install linux-perf)" >&2; exit 1; }
  if ! perf record -e cpu-clock -o "$out/perf-check.data" -- true >/dev/null 2>&1; then
    echo "flamegraph.sh: perf cannot record cpu-clock here (check /proc/sys/kernel/perf_event_paranoid)" >&2
    exit 1
  fi
  rm -f "$out/perf-check.data"
  perf record -a -g -e cpu-clock -F 499 -o "$out/perf.data" >"$out/perf-record.log" 2>&1 &
  perf_pid=$!
  stop_perf() { kill -INT "$perf_pid" 2>/dev/null || true; wait "$perf_pid" 2>/dev/null || true; }
  trap stop_perf EXIT
  node build/benchmark/run-matrix.js "${matrix_args[@]}" \
    --forwarder-node-args "--perf-basic-prof --interpreted-frames-native-stack" "$@"
  stop_perf
  trap - EXIT
  result="$(find "$out/run" -name result.json | head -n1)"
  fwd_pid="$(node -e 'const r=require(process.argv[1]); console.log(r.result && r.result.forwarder ? r.result.forwarder.pid : "")' "$result")"
  [ -n "$fwd_pid" ] || { echo "flamegraph.sh: no forwarder pid in $result" >&2; exit 1; }
  # comm,pid,tid: the converter needs "pid/tid" in each sample header to split by thread.
  perf script -i "$out/perf.data" --pid "$fwd_pid" -F comm,pid,tid,ip,sym,dso \
    >"$out/perf.txt" 2>"$out/perf-script.log"
  node build/benchmark/flamegraph.js --perf-script "$out/perf.txt" --pid "$fwd_pid" --out "$out" \
    --title "forwarder, QoS 1, $messages messages (perf)"
  # perf maps of the profiled process (written by --perf-basic-prof) are no longer needed.
  rm -f "/tmp/perf-$fwd_pid.map"
fi
echo "flame graphs: $out/index.html"
