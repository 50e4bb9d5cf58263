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
export const KAFKA_BROKERS = `127.0.0.1:${KAFKA_PORT}`;

/** Repository root (tests run from build/test/...). */
export const REPO_ROOT = path.resolve(__dirname, '..', '..', '..');

/** A name unique to this test run, safe as MQTT topic level, Kafka topic and client id. */
export function uniqueName(prefix: string): string {
  return `${prefix}-${process.pid}-${Date.now().toString(36)}-${Math.floor(Math.random() * 1e6).toString(36)}`;
}
