/**
 * Where the integration tests find the brokers. scripts/test starts a real mosquitto and a real
 * Kafka on the suite's own ports and exports them; a developer can point the suite at a running
 * stack the same way.
 */
import path from 'node:path';

function port(name: string, fallback: number): number {
  const v = process.env[name];
  return v === undefined ? fallback : Number(v);
}

export const MQTT_PORT = port('MQTT_PORT', 18830);
export const KAFKA_PORT = port('KAFKA_PORT', 19092);
export const MQTT_HOST = '127.0.0.1';

/**
 * Which broker answers on MQTT_PORT: `mosquitto` (scripts/stack, the default), `hivemq` (HiveMQ
 * Community Edition, embedded, scripts/broker2 with MKF_BROKER2=hivemq) or `mochi` (mochi-mqtt,
 * scripts/broker2 with MKF_BROKER2=mochi). Tests that need a broker's own tools (restart through
 * scripts/stack or scripts/broker2, mosquitto_pub) use the matching one or skip with the reason.
 */
export type MqttBroker = 'mosquitto' | 'hivemq' | 'mochi';
export const MQTT_BROKER: MqttBroker = ((): MqttBroker => {
  const v = process.env['MQTT_BROKER'] ?? 'mosquitto';
  if (v !== 'mosquitto' && v !== 'hivemq' && v !== 'mochi') {
    throw new Error(`MQTT_BROKER=${v}: expected mosquitto, hivemq or mochi`);
  }
  return v;
})();
export const KAFKA_BROKERS = `127.0.0.1:${KAFKA_PORT}`;

/** Repository root (tests run from build/test/...). */
export const REPO_ROOT = path.resolve(__dirname, '..', '..', '..');

/** A name unique to this test run, safe as MQTT topic level, Kafka topic and client id. */
export function uniqueName(prefix: string): string {
  return `${prefix}-${process.pid}-${Date.now().toString(36)}-${Math.floor(Math.random() * 1e6).toString(36)}`;
}
