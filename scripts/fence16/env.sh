# Sourced by the fence16 helper scripts: this helper's own stack, ports and files.
cd /work/main && source scripts/lib/node-runtime.sh && mkf_use_image_node
export MKF_STACK_DIR=/work/main/.stack/helper16 MQTT_PORT=48830 KAFKA_PORT=49092 KAFKA_CONTROLLER_PORT=49093
export PROXY_PORT=49094
export F16=/work/wt-fence/scripts/fence16
export RUNS=/work/f16-runs
mkdir -p "$MKF_STACK_DIR" "$RUNS"
