import type { RecordHeader } from '../4-kafka-produce/codec';
import type { PendingRecord } from '../record';

/** The original message, as received, for the dead-letter topic; headers say where it failed. */
export function deadLetterRecord(
  r: PendingRecord,
  mappingName: string,
  kafkaTopic: string,
  reason: string,
): PendingRecord {
  const headers: RecordHeader[] = [
    { key: 'mqtt_topic', value: r.mqttTopic },
    { key: 'mqtt_qos', value: Buffer.from(String(r.entry.qos)) },
    { key: 'mqtt_retain', value: Buffer.from(String(r.entry.retain)) },
    { key: 'mapping', value: Buffer.from(mappingName) },
    { key: 'error', value: Buffer.from(reason) },
  ];
  return {
    entry: r.entry,
    mapping: r.mapping,
    kafkaTopic,
    key: r.key,
    mqttTopic: r.mqttTopic,
    value: r.payload,
    payload: r.payload,
    headers,
    deadLetter: true,
  };
}
