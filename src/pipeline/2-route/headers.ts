/**
 * Kafka headers from the MQTT message, per mapping and opt-in (`kafka.headers`). Metadata header
 * names are fixed at load; user properties pass only by the allow-list, so a publisher cannot
 * add a header that consumers trust (docs/SECURITY.md).
 */
import { isUtf8 } from 'node:buffer';
import type { IPublishPacket } from 'mqtt';
import type { HeaderField, HeaderRule } from '../../config/mapping-rules';
import { correlationBase64Name } from '../../config/mapping-rules';
import type { RecordHeader } from '../4-kafka-produce/codec';

const QOS = [Buffer.from('0'), Buffer.from('1'), Buffer.from('2')] as const;
const TRUE = Buffer.from('true');
const FALSE = Buffer.from('false');
const ONE = Buffer.from('1');
const ZERO = Buffer.from('0');

type Properties = NonNullable<IPublishPacket['properties']>;

/** One compiled rule: the header names built once, not per message. */
export class HeaderWriter {
  private readonly fields: readonly (readonly [HeaderField, string])[];
  private readonly users: readonly (readonly [string, string])[];
  private readonly correlationBase64: string;

  constructor(rule: HeaderRule) {
    this.fields = rule.include.map((f) => [f, rule.prefix + f] as const);
    this.correlationBase64 = correlationBase64Name(rule.prefix);
    this.users = rule.user_properties.map((u) => [u, rule.user_property_prefix + u] as const);
  }

  headers(packet: IPublishPacket, topicBytes: Buffer): RecordHeader[] {
    const out: RecordHeader[] = [];
    const props = packet.properties;
    for (const [field, key] of this.fields) {
      const value = fieldValue(field, packet, topicBytes, props);
      if (value === undefined) continue;
      // Header values reach Kafka as UTF-8 text (codec.ts): bytes that are not UTF-8 go as
      // base64, under a name of their own so a consumer never has to guess.
      if (field === 'correlation_data' && !isUtf8(value))
        out.push({ key: this.correlationBase64, value: Buffer.from(value.toString('base64')) });
      else out.push({ key, value });
    }
    const user = props?.userProperties;
    if (user !== undefined) {
      for (const [name, key] of this.users) {
        if (!Object.prototype.hasOwnProperty.call(user, name)) continue;
        const v = user[name]!;
        if (typeof v === 'string') out.push({ key, value: Buffer.from(v) });
        else for (const one of v) out.push({ key, value: Buffer.from(one) });
      }
    }
    return out;
  }
}

function fieldValue(
  field: HeaderField,
  packet: IPublishPacket,
  topicBytes: Buffer,
  props: Properties | undefined,
): Buffer | undefined {
  switch (field) {
    case 'topic':
      return topicBytes;
    case 'qos':
      return QOS[packet.qos];
    case 'retain':
      return packet.retain ? TRUE : FALSE;
    case 'content_type':
      return props?.contentType === undefined ? undefined : Buffer.from(props.contentType);
    case 'payload_format_indicator':
      return props?.payloadFormatIndicator === undefined
        ? undefined
        : props.payloadFormatIndicator
          ? ONE
          : ZERO;
    case 'response_topic':
      return props?.responseTopic === undefined ? undefined : Buffer.from(props.responseTopic);
    case 'correlation_data':
      return props?.correlationData;
    case 'message_expiry_interval':
      return props?.messageExpiryInterval === undefined
        ? undefined
        : Buffer.from(String(props.messageExpiryInterval));
  }
}
