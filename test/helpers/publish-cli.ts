/**
 * Manual load for development: `node build/test/helpers/publish-cli.js <count> <topic> [qos]`
 * against MQTT_PORT. Prints the publish rate. Bounded by count.
 */
import { publishMany } from './mqtt';

async function main(): Promise<void> {
  const count = Number(process.argv[2] ?? 10000);
  const topic = process.argv[3] ?? 'demo/load';
  const qos = Number(process.argv[4] ?? 1) as 0 | 1 | 2;
  const t0 = Date.now();
  await publishMany({
    count,
    qos,
    topic: () => topic,
    payload: (i) => `${i}`.padEnd(100, '.'),
    maxInflight: 1000,
  });
  const s = (Date.now() - t0) / 1000;
  console.log(`published ${count} qos${qos} in ${s.toFixed(2)} s = ${Math.round(count / s)} msg/s`);
}
void main();
