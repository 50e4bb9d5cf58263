/**
 * One Kafka record of one received message for one mapping, from routing until Kafka's answer
 * is settled. Every stage holds the same object; nothing here is copied per stage.
 */
import type { PackedRecord } from './4-kafka-produce/codec';
import type { WindowEntry } from './6-mqtt-ack/window';

export interface PendingRecord extends PackedRecord {
  /** The Kafka record key (by default the MQTT topic as UTF-8); null: no key. */
  readonly key: Buffer | null;
  /** The MQTT topic as UTF-8. */
  readonly mqttTopic: Buffer;
  /** The received message this record belongs to; confirming it counts down its `pending`. */
  readonly entry: WindowEntry;
  /** Index of the mapping in the router that routed it (5-settle finds that generation by seq). */
  readonly mapping: number;
  /** The MQTT payload as received (the value differs with wrap_as_json). */
  readonly payload: Buffer;
  /** Set on the copy sent to a dead-letter topic. */
  readonly deadLetter?: boolean;
  /** Counted as held while a `stop`-policy retry of this record is pending. */
  halted?: boolean;
}
