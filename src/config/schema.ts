import { z } from 'zod';
import {
  KAFKA_PROPERTY_ALIASES,
  isAcksAll,
  isKafkaTrue,
  isSecretKafkaKey,
  userAcks,
} from './kafka-properties';
import {
  HEADER_FIELDS,
  MQTT5_HEADER_FIELDS,
  headerNamesProblem,
  mappingTemplateProblems,
} from './mapping-rules';
import {
  KAFKA_TOPIC_JSON_SCHEMA,
  KAFKA_TOPIC_TEMPLATE_JSON_SCHEMA,
  kafkaTopicProblem,
  topicFilterProblem,
} from './topic-rules';

// setTimeout fires at once for delays above this, so no millisecond setting may exceed it.
const MAX_TIMER_MS = 2_147_483_647;
const UINT32_MAX = 4_294_967_295;
/** The most ingest processes one supervisor runs (`processes`, `share.processes`). */
export const MAX_PROCESSES = 64;

const port = (def: number, what: string) =>
  z.int().min(1).max(65535).default(def).describe(`TCP port of ${what}.`);

const millis = (min: number, def: number, description: string) =>
  z.int().min(min).max(MAX_TIMER_MS).default(def).describe(description);

function checked(problem: (value: string) => string | undefined) {
  return (value: string, ctx: z.RefinementCtx<string>): void => {
    const message = problem(value);
    if (message !== undefined) ctx.addIssue({ code: 'custom', message });
  };
}

const tlsSchema = z
  .strictObject({
    ca_cert: z
      .string()
      .min(1)
      .describe(
        'Path to the PEM-encoded CA certificate the broker certificate is verified against. Must be a readable file at start (a relative path is relative to the working directory).',
      ),
    client_cert: z
      .string()
      .min(1)
      .optional()
      .describe(
        'Path to a PEM-encoded client certificate for mutual TLS. Requires client_key. Must be a readable file at start.',
      ),
    client_key: z
      .string()
      .min(1)
      .optional()
      .describe(
        'Path to the PEM-encoded private key of client_cert. Requires client_cert. Must be a readable file at start.',
      ),
    verify_hostname: z
      .boolean()
      .default(true)
      .describe(
        'Check that the broker certificate was issued for mqtt.host. Only turn this off for test setups: it lets anyone with a certificate from the same CA impersonate the broker.',
      ),
  })
  .optional()
  .describe('Connect to the broker over TLS. Absent: plain TCP.');

const credentialsSchema = z
  .strictObject({
    username: z.string().describe('User name sent in CONNECT.'),
    password: z
      .string()
      .optional()
      .describe(
        'Password sent in CONNECT. Use `${ENV_VAR}` or password_file to keep it out of the file. Exactly one of password and password_file.',
      ),
    password_file: z
      .string()
      .min(1)
      .optional()
      .describe(
        'Path of a file holding the password, e.g. a mounted Kubernetes Secret. Read once at start (a relative path is relative to the working directory); one trailing newline is removed. Exactly one of password and password_file.',
      ),
  })
  .optional()
  .describe('User name and password authentication. Absent: connect without credentials.');

const mqttSchema = z
  .strictObject({
    host: z
      .string()
      .min(1)
      .default('localhost')
      .describe('Host name or IP address of the MQTT broker.'),
    port: port(1883, 'the MQTT broker'),
    client_id: z
      .string()
      .default('')
      .describe(
        'MQTT client id. Empty: a clean session (the broker forgets the subscriptions and queued messages when the forwarder disconnects). Set: a persistent session, so messages published while the forwarder was down are delivered after it reconnects. Must be unique per broker.',
      ),
    protocol_version: z
      .literal([5, '3.1.1', 4, '4', '5'], {
        error: (issue) =>
          `must be 5 (MQTT 5) or '3.1.1' (MQTT 3.1.1, also written 4)` +
          (issue.input === 3.1
            ? ` (got the number 3.1: MQTT 3.1 is not supported; write '3.1.1')`
            : ` (got ${JSON.stringify(issue.input) ?? 'nothing'})`),
      })
      .default(5)
      .transform((v): 4 | 5 => (v === 5 || v === '5' ? 5 : 4))
      .describe(
        "MQTT protocol version: 5, or '3.1.1' (4 is accepted as its protocol level). Read as the number 4 or 5.",
      ),
    keepalive_s: z
      .int()
      .min(0)
      .max(65535)
      .default(30)
      .describe('Keep-alive interval in seconds; 0 turns keep-alive off.'),
    session_expiry_s: z
      .int()
      .min(0)
      .max(UINT32_MAX)
      .default(UINT32_MAX)
      .describe(
        `MQTT 5 only: how long the broker keeps a persistent session (client_id set) after a disconnect. ${UINT32_MAX} means it never expires, which matches the MQTT 3.1.1 persistent session of the reference service. Ignored with MQTT 3.1.1.`,
      ),
    connect_timeout_ms: millis(1, 10000, 'How long one connection attempt to the broker may take.'),
    // A floor of 1 because a backoff that doubles from 0 stays 0: a reconnect busy loop.
    reconnect_min_ms: millis(
      1,
      500,
      'Delay before the first reconnect attempt after a lost connection; it doubles per failed attempt.',
    ),
    reconnect_max_ms: millis(
      1,
      30000,
      'Upper bound of the reconnect delay. Must be at least reconnect_min_ms.',
    ),
    inflight_window: z
      .int()
      .min(1)
      .max(65535)
      .default(1000)
      .describe(
        'Most messages received but not yet acknowledged (waiting for Kafka) per connection. When the window is full the forwarder stops reading from the broker. With MQTT 5 it is also sent as receive-maximum.',
      ),
    max_payload_bytes: z
      .int()
      .min(0)
      .max(268_435_455)
      .default(0)
      .describe(
        "Largest MQTT payload forwarded. A larger message is handled like a message Kafka refuses: by its mapping's on_error policy, logged and counted (mkf_messages_failed_total). 0: no limit of the forwarder's own (the broker's and Kafka's limits still apply). Checked on receipt rather than sent to the broker as MQTT 5 maximum-packet-size, because a broker silently discards packets above that limit.",
      ),
    tls: tlsSchema,
    credentials: credentialsSchema,
  })
  .prefault({})
  .describe('Connection to the MQTT broker.');

const kafkaSchema = z
  .strictObject({
    bootstrap_server: z
      .string()
      .min(1)
      .default('localhost')
      .describe('Host name or IP address of a Kafka broker to bootstrap from.'),
    port: port(9092, 'the Kafka bootstrap broker'),
    config: z
      .record(z.string(), z.union([z.string(), z.number(), z.boolean()]))
      .default({})
      .describe(
        'librdkafka producer properties, passed through (see librdkafka CONFIGURATION.md): `security.protocol`, `ssl.*`, `sasl.*`, `compression.type`, `linger.ms`, ... Topic-level properties such as `acks` and `message.timeout.ms` are routed to the topic configuration. Unless set here: `bootstrap.servers` is `bootstrap_server:port`, `acks` is `all`, `enable.idempotence` is `true` (when `acks` is `all`), and `linger.adaptive` is `true` (a property the bundled librdkafka gains by a patch of this project: a partition with no messages in flight and no request in the last `linger.ms` sends at once instead of waiting `linger.ms`; `false` restores the upstream behaviour). Checked by librdkafka itself at start, so an unknown property or a value librdkafka refuses is a config error naming the key. File properties (`ssl.ca.location`, `ssl.certificate.location`, `ssl.key.location`, `ssl.crl.location`, `ssl.keystore.location`, `sasl.kerberos.keytab`, ...) must name readable files when `security.protocol` makes librdkafka read them (`ssl.*` with SSL and SASL_SSL, `sasl.*` with SASL_PLAINTEXT and SASL_SSL); `ssl.ca.location` may also be a directory or `probe`.',
      ),
    config_files: z
      .record(z.string(), z.string().min(1))
      .optional()
      .describe(
        'Secret librdkafka properties whose value is read from a file, e.g. `sasl.password: /var/run/secrets/kafka/password` for a mounted Kubernetes Secret. Each file is read once at start (a relative path is relative to the working directory) and one trailing newline is removed; the value then applies as if written under `config`. Allowed for properties the forwarder treats as secret: names containing `password` or `secret`, `ssl.key.pem` and `sasl.oauthbearer.config`. Absent: no property is read from a file.',
      ),
  })
  .prefault({})
  .describe('Connection to Kafka and producer settings.');

const mappingSchema = z.strictObject({
  name: z
    .string()
    .min(1)
    .describe('Name of the mapping, unique in the list; used in logs and metrics.'),
  mqtt: z
    .strictObject({
      topic: z
        .string()
        .meta({ minLength: 1 })
        .superRefine(checked(topicFilterProblem))
        .describe(
          "MQTT topic filter to subscribe to; may use the wildcards '+' and '#'. A '+' level may be named for kafka.topic and kafka.key templates: `plant/+{site}/#` is subscribed as `plant/+/#`, and `{site}` then stands for that level.",
        ),
      qos: z
        .literal([0, 1, 2])
        .default(2)
        .describe(
          'QoS of the subscription: the highest QoS the broker uses to deliver. Messages are forwarded at least once only with QoS 1 and 2.',
        ),
    })
    .describe('Where the messages come from.'),
  kafka: z
    .strictObject({
      topic: z
        .string()
        .meta(KAFKA_TOPIC_TEMPLATE_JSON_SCHEMA)
        .superRefine(checked((v) => (/[{}]/u.test(v) ? undefined : kafkaTopicProblem(v))))
        .describe(
          "Kafka topic the messages are produced to: a name, or a template built from the MQTT topic with `{topic}` (the whole topic), `{1}`, `{2}`, ... (its levels) and `{name}` (a level written `+{name}` in mqtt.topic), e.g. `sensors.{site}`. A placeholder may only use levels every topic matching the filter has. Kafka allows only ASCII letters, digits, '.', '_' and '-': in a substituted value '/' becomes '.' and every other character '_'. A rendered name Kafka still cannot take (empty, '.', '..', longer than 249 characters) is handled by on_error like a record Kafka refuses.",
        ),
      key: z
        .string()
        .nullable()
        .optional()
        .describe(
          "Kafka record key, which picks the partition: a template like kafka.topic (e.g. `{device}`), its values used as they are (UTF-8, nothing replaced); `null` (or `~`): no key, so librdkafka spreads the records over the partitions. Absent: the whole MQTT topic, the reference service's key. Records of one MQTT topic keep their receive order in Kafka only when they share a partition, i.e. when the key is a function of the topic (any template is).",
        ),
      headers: z
        .strictObject({
          include: z
            .array(z.enum(HEADER_FIELDS))
            .default([...HEADER_FIELDS])
            .describe(
              `MQTT metadata written as Kafka headers, each named prefix + field. ${MQTT5_HEADER_FIELDS.join(', ')} are MQTT 5 properties: present only when the publisher set them (and the forwarder connects with MQTT 5). Values: the topic and strings as UTF-8, qos as 0/1/2, retain as true/false, payload_format_indicator as 0/1, message_expiry_interval as the seconds left when the broker delivered the message, correlation_data as its bytes when they are UTF-8, otherwise base64 under the name prefix + correlation_data_base64 (Kafka header values pass the binding as text).`,
            ),
          prefix: z
            .string()
            .default('mqtt_')
            .describe('Prepended to each name in include (e.g. mqtt_topic).'),
          user_properties: z
            .array(z.string().min(1))
            .default([])
            .describe(
              'MQTT 5 user properties copied as Kafka headers: only these names (an allow-list), so a publisher cannot add headers your consumers trust. A name the publisher repeats gives one header per value, in order.',
            ),
          user_property_prefix: z
            .string()
            .default('')
            .describe(
              'Prepended to the name of each user property header. No header name may come out twice (checked at load).',
            ),
        })
        .optional()
        .describe(
          'Kafka headers from the MQTT message. Absent: none (as the reference service). `headers: {}` writes every field of include.',
        ),
    })
    .describe('Where the messages go.'),
  on_error: z
    .enum(['stop', 'skip', 'dead_letter'])
    .default('stop')
    .describe(
      'What to do with a message Kafka refuses for a reason retrying cannot fix (larger than the broker allows, topic missing with auto-create off, not authorised). stop: stop reading MQTT, report not ready, keep the message unacknowledged and retry it every 30 s (nothing is lost; the forwarder resumes by itself once Kafka takes it). skip: log and count it, then acknowledge it (it is lost on purpose). dead_letter: produce it to dead_letter_topic with its original payload and headers naming the MQTT topic, QoS, retain flag, mapping and error, then acknowledge it. Transient errors are always retried without limit.',
    ),
  dead_letter_topic: z
    .string()
    .meta(KAFKA_TOPIC_JSON_SCHEMA)
    .superRefine(checked(kafkaTopicProblem))
    .optional()
    .describe('Kafka topic for on_error: dead_letter. Required with it, not allowed without it.'),
  share: z
    .strictObject({
      group: z
        .string()
        .min(1)
        .regex(/^[^/+#]+$/u, "must not contain '/', '+' or '#'")
        .optional()
        .describe(
          "Shared subscription group name (`$share/<group>/<filter>`). Every forwarder subscribing with the same group and filter splits the messages with the others, across processes and pods. Default: 'forwarder-' + the mapping name with every character outside [A-Za-z0-9_-] replaced by '_'.",
        ),
      processes: z
        .int()
        .min(1)
        .max(MAX_PROCESSES)
        .optional()
        .describe(
          'How many of the ingest processes (top-level `processes`) subscribe it. Default: all of them.',
        ),
    })
    .optional()
    .describe(
      "Subscribe this mapping as an MQTT shared subscription, so several ingest processes (and pods) split its messages: throughput for one hot filter. Per-topic order then holds only where the broker hands all messages of a topic to one member (docs/DEPLOY.md, 'Brokers'). Absent: the mapping is owned by exactly one process, which keeps per-topic order with any broker.",
    ),
  wrap_as_json: z
    .boolean()
    .default(false)
    .describe(
      'Wrap each payload as `{"topic":"<mqtt topic>","payload":"<base64 of the payload>"}` to keep the MQTT topic. Otherwise the raw payload is forwarded.',
    ),
});

const httpSchema = z
  .strictObject({
    enabled: z
      .boolean()
      .default(true)
      .describe('Serve /healthz, /readyz and /metrics. Off: no listening socket at all.'),
    host: z
      .string()
      .min(1)
      .default('0.0.0.0')
      .describe(
        'Address the HTTP server binds to. 0.0.0.0 lets Kubernetes probes and Prometheus reach it; 127.0.0.1 keeps it local.',
      ),
    port: z
      .int()
      .min(0)
      .max(65535)
      .default(8080)
      .describe(
        'TCP port of the HTTP server (the reference service also uses 8080). 0: any free port (logged).',
      ),
  })
  .prefault({})
  .describe('Health, readiness and Prometheus metrics endpoints.');

const dispatchSchema = z
  .strictObject({
    workers: z
      .int()
      .min(0)
      .max(64)
      .default(1)
      .describe('Kafka producer worker threads. 0: the producer runs on the main thread.'),
    batch_size: z
      .int()
      .min(1)
      .max(10000)
      .default(1000)
      .describe('Most records in one batch handed to a worker.'),
    linger_ms: z
      .number()
      .min(0)
      .max(1000)
      .default(1)
      .describe(
        'Longest time a batch that is not full waits for more records while its producer is busy with earlier batches. A producer with nothing in hand gets the batch at the end of the current I/O turn, without waiting.',
      ),
    batches_per_worker: z
      .int()
      .min(1)
      .max(64)
      .default(4)
      .describe('Batches in flight per worker at the same time.'),
    max_inflight_bytes: z
      .int()
      .min(1024)
      .max(Number.MAX_SAFE_INTEGER)
      .default(64 * 1024 * 1024)
      .describe(
        'Most payload bytes received but not yet acknowledged. Together with mqtt.inflight_window this bounds memory: when either is reached the forwarder stops reading from the broker.',
      ),
    kafka_connect_timeout_ms: millis(
      1,
      5000,
      'How long one connect attempt of a Kafka producer may take; failed attempts are retried with backoff. Kept short because shutdown waits for a pending connect.',
    ),
  })
  .prefault({})
  .describe('How records are batched and handed to the Kafka producers.');

/**
 * Rules that involve more than one field, stated once so docs/CONFIG.md can list them.
 * `validateRules` below enforces them.
 */
export const CONFIG_RULES: readonly string[] = [
  '`mqtt.tls.client_cert` and `mqtt.tls.client_key` are set together or not at all.',
  '`mqtt.credentials`: exactly one of `password` and `password_file` is set.',
  '`kafka.config_files`: only secret properties (see `kafka.config_files`), and none also set in `kafka.config`.',
  '`mqtt.reconnect_min_ms` is at most `mqtt.reconnect_max_ms`.',
  'Every `forwarding[].name` is unique.',
  '`forwarding[].kafka.topic` and `forwarding[].kafka.key` templates use only levels that every topic matching `forwarding[].mqtt.topic` has: `{n}` at most the number of levels before a `#`, `{name}` only a level the filter names `+{name}`.',
  '`forwarding[].kafka.headers`: no header name comes out twice (prefix + include entries, user_property_prefix + user_properties).',
  '`forwarding[].dead_letter_topic` is set exactly when `forwarding[].on_error` is `dead_letter`.',
  '`forwarding[].share` is not combined with an `mqtt.topic` that is already a `$share/...` filter.',
  '`forwarding[].share.processes` is at most `processes` (when that is a number).',
  '`kafka.config`: `enable.idempotence=true` requires `acks=all`.',
  `\`kafka.config\`: each of ${KAFKA_PROPERTY_ALIASES.map(([a, b]) => `\`${a}\`/\`${b}\``).join(', ')} name the same property; set at most one of each pair.`,
  '`kafka.config`: `delivery.report.only.error` must not be `true`, and `dr_cb`/`dr_msg_cb`/`dr_compact`/`dr_wakeup` must not be set: MQTT messages are acknowledged on Kafka delivery reports.',
];

type Report = (path: readonly PropertyKey[], message: string) => void;

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * Enforces CONFIG_RULES. It also runs when other fields failed (so all problems are reported at
 * once), which is why it reads its input defensively instead of trusting the output type.
 */
function validateRules(cfg: unknown, report: Report): void {
  if (!isRecord(cfg)) return;

  const mqtt = cfg['mqtt'];
  if (isRecord(mqtt)) {
    const tls = mqtt['tls'];
    if (isRecord(tls)) {
      const hasCert = tls['client_cert'] !== undefined;
      const hasKey = tls['client_key'] !== undefined;
      if (hasCert && !hasKey) {
        report(
          ['mqtt', 'tls', 'client_cert'],
          'client_cert requires client_key (mutual TLS needs both)',
        );
      }
      if (hasKey && !hasCert) {
        report(
          ['mqtt', 'tls', 'client_key'],
          'client_key requires client_cert (mutual TLS needs both)',
        );
      }
    }
    const credentials = mqtt['credentials'];
    if (isRecord(credentials)) {
      const hasPassword = credentials['password'] !== undefined;
      const hasFile = credentials['password_file'] !== undefined;
      if (hasPassword === hasFile) {
        report(
          ['mqtt', 'credentials'],
          hasPassword
            ? 'set either password or password_file, not both'
            : 'password or password_file is required with username',
        );
      }
    }
    const min = mqtt['reconnect_min_ms'];
    const max = mqtt['reconnect_max_ms'];
    if (typeof min === 'number' && typeof max === 'number' && min > max) {
      report(
        ['mqtt', 'reconnect_min_ms'],
        `reconnect_min_ms must not exceed reconnect_max_ms (got ${min} > ${max})`,
      );
    }
  }

  const forwarding = cfg['forwarding'];
  if (Array.isArray(forwarding)) {
    const firstUse = new Map<string, number>();
    forwarding.forEach((mapping: unknown, i) => {
      if (isRecord(mapping)) {
        const dlq = mapping['dead_letter_topic'];
        if (mapping['on_error'] === 'dead_letter' && dlq === undefined) {
          report(
            ['forwarding', i, 'dead_letter_topic'],
            'on_error: dead_letter requires dead_letter_topic',
          );
        }
        if (mapping['on_error'] !== 'dead_letter' && dlq !== undefined) {
          report(
            ['forwarding', i, 'dead_letter_topic'],
            `dead_letter_topic is only used with on_error: dead_letter (on_error is ${String(mapping['on_error'] ?? 'stop')})`,
          );
        }
      }
      const share = isRecord(mapping) ? mapping['share'] : undefined;
      if (isRecord(mapping) && isRecord(share)) {
        const mq = mapping['mqtt'];
        const topic = isRecord(mq) ? mq['topic'] : undefined;
        if (typeof topic === 'string' && topic.startsWith('$share/')) {
          report(
            ['forwarding', i, 'share'],
            'mqtt.topic is already a shared subscription ($share/...); drop share, or write the plain filter',
          );
        }
        const k = share['processes'];
        const n = cfg['processes'] ?? 1;
        if (typeof k === 'number' && typeof n === 'number' && k > n) {
          report(
            ['forwarding', i, 'share', 'processes'],
            `is ${k}, but only ${n} ingest process${n === 1 ? '' : 'es'} run (processes: ${n})`,
          );
        }
      }
      for (const p of mappingTemplateProblems(mapping))
        report(['forwarding', i, ...p.path], p.message);
      const kafka = isRecord(mapping) ? mapping['kafka'] : undefined;
      const headers = headerNamesProblem(isRecord(kafka) ? kafka['headers'] : undefined);
      if (headers) report(['forwarding', i, ...headers.path], headers.message);
      const name = isRecord(mapping) ? mapping['name'] : undefined;
      if (typeof name !== 'string') return;
      const first = firstUse.get(name);
      if (first === undefined) firstUse.set(name, i);
      else {
        report(
          ['forwarding', i, 'name'],
          `duplicate mapping name ${JSON.stringify(name)} (first used at forwarding[${first}])`,
        );
      }
    });
  }

  const kafka = cfg['kafka'];
  const props = isRecord(kafka) ? kafka['config'] : undefined;
  const files = isRecord(kafka) ? kafka['config_files'] : undefined;
  if (isRecord(files)) {
    for (const key of Object.keys(files)) {
      // Only secrets: the rules below check kafka.config, and a file must not bypass them.
      if (!isSecretKafkaKey(key)) {
        report(
          ['kafka', 'config_files', key],
          'is not a secret property; only properties whose name contains password or secret, ssl.key.pem and sasl.oauthbearer.config can be read from a file (set others under kafka.config)',
        );
      } else if (isRecord(props) && props[key] !== undefined) {
        report(['kafka', 'config_files', key], 'is also set in kafka.config; set it in one place');
      }
    }
  }
  if (isRecord(props)) {
    const configPath = ['kafka', 'config'];
    const acks = userAcks(props);
    if (props['enable.idempotence'] !== undefined && isKafkaTrue(props['enable.idempotence'])) {
      if (acks !== undefined && !isAcksAll(acks)) {
        report(configPath, `enable.idempotence=true requires acks=all (got acks=${String(acks)})`);
      }
    }
    for (const [a, b] of KAFKA_PROPERTY_ALIASES) {
      if (props[a] !== undefined && props[b] !== undefined) {
        report(configPath, `${a} and ${b} are two names of one property; set only one`);
      }
    }
    const onlyError = props['delivery.report.only.error'];
    if (onlyError !== undefined && isKafkaTrue(onlyError)) {
      report(
        [...configPath, 'delivery.report.only.error'],
        'must not be true: MQTT messages are acknowledged when Kafka reports their delivery, so without success reports nothing would ever be acknowledged',
      );
    }
    for (const key of ['dr_cb', 'dr_msg_cb', 'dr_compact', 'dr_wakeup']) {
      if (props[key] !== undefined) {
        report(
          [...configPath, key],
          'is managed by the forwarder (delivery reports drive MQTT acknowledgements); remove it',
        );
      }
    }
  }
}

export const configSchema = z
  .strictObject({
    mqtt: mqttSchema,
    kafka: kafkaSchema,
    forwarding: z
      .array(mappingSchema)
      .min(1)
      .describe('Topic mappings: each MQTT topic filter and the Kafka topic its messages go to.'),
    dispatch: dispatchSchema,
    http: httpSchema,
    processes: z
      .union([z.int().min(1).max(MAX_PROCESSES), z.literal('auto')])
      .default(1)
      .describe(
        "Ingest processes, each with its own MQTT connection, router and producer worker threads, under one supervisor process that serves the HTTP endpoints for all of them. 1: a single process, no supervisor. 'auto': the container's CPU limit (cgroup quota, else the CPUs this process may use) divided by 1 + dispatch.workers (one core per main thread and one per producer thread), at least 1. Each mapping without `share` is owned by one process (assigned round robin); mqtt.client_id becomes `<client_id>-<index>` per process when it is set.",
      ),
    log_level: z
      .enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'])
      .default('info')
      .describe('Least severe log level written.'),
    shutdown_timeout_ms: millis(
      0,
      10000,
      'On SIGTERM/SIGINT: how long to wait for outstanding Kafka deliveries before exiting anyway. Messages not yet acknowledged are redelivered by the broker (QoS 1/2 with a persistent session). The whole stop (MQTT disconnect, producer flush and close) ends within this + 5 s: at this + 4.5 s the process exits with code 3 whatever is still closing.',
    ),
  })
  .superRefine(
    (cfg, ctx) =>
      validateRules(cfg, (path, message) =>
        ctx.addIssue({ code: 'custom', path: [...path], message }),
      ),
    { when: () => true },
  );

export type Config = z.output<typeof configSchema>;
export type ConfigInput = z.input<typeof configSchema>;
export type Mapping = Config['forwarding'][number];
