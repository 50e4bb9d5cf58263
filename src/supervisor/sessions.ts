/**
 * Orphaned persistent sessions: when the number of ingest processes shrinks, or goes between 1
 * and more, the broker may still hold a session (with queued QoS 1/2 messages) for a client id
 * no process of the config connects with any more. Nothing forwards those messages until some
 * forwarder connects with that id again, so the supervisor reports them at start.
 *
 * MQTT has no way to ask whether a session exists except connecting with its client id. The
 * probe therefore connects with each candidate id, reads sessionPresent from the CONNACK, and
 * leaves the broker as it found it: an existing session keeps its subscriptions and every
 * queued message (none is acknowledged), and the empty session its own connect created when
 * there was none is removed again.
 *
 * A probe takes over the connection of a client that is connected with the same id at that
 * moment (MQTT allows one connection per client id); the candidates are the ids this config
 * does not use, so only a forwarder of another config sharing the client id would notice.
 */
import mqtt from 'mqtt';
import type { IClientOptions, MqttClient } from 'mqtt';
import type { Config } from '../config/schema';
import type { Logger } from '../observability/logger';
import { mqttClientOptions } from '../pipeline/1-mqtt-receive/mqtt-source';
import { interceptAcks } from '../seams/mqtt-client';
import { MAX_PROCESSES } from '../config/schema';

export interface SessionProbeResult {
  readonly clientId: string;
  readonly present: boolean;
  readonly error?: string;
}

const DEFAULT_CONCURRENCY = 8;
/** MQTT 5 session expiry "never", the same value the config's default means. */
const NEVER_EXPIRES = 4_294_967_295;

/**
 * Candidate client ids that may hold an orphaned session: the bare id when count > 1, and
 * `<id>-<i>` for i in [0, 64) except the indices in `inUse`. Empty when client_id is ''.
 */
export function orphanCandidates(
  clientId: string,
  count: number,
  inUse: ReadonlySet<number>,
): string[] {
  // Without a client id every connection is a clean session: the broker keeps nothing.
  if (clientId === '') return [];
  const ids: string[] = [];
  if (count > 1) ids.push(clientId);
  for (let i = 0; i < MAX_PROCESSES; i++) {
    if (!inUse.has(i)) ids.push(`${clientId}-${i}`);
  }
  return ids;
}

/**
 * Connects once with each candidate id (at most `concurrency` at a time, default 8, each
 * bounded by mqtt.connect_timeout_ms) and reports whether the broker holds a session for it.
 * Never deletes or changes a session that exists; removes the empty session its own connect
 * created when there was none. Never rejects: a probe that fails carries `error`.
 *
 * Bound: the connect of each probe takes at most connect_timeout_ms, and removing the session
 * it created (or disconnecting from one that exists) at most connect_timeout_ms more, so the
 * call ends within ceil(ids / concurrency) × 2 × connect_timeout_ms.
 */
export async function probeSessions(
  mqttCfg: Config['mqtt'],
  clientIds: readonly string[],
  log: Logger,
  opts: { concurrency?: number } = {},
): Promise<SessionProbeResult[]> {
  if (clientIds.length === 0) return [];
  let base: IClientOptions;
  try {
    // Built once: it reads the TLS files and warns about verify_hostname, once per call.
    base = mqttClientOptions(mqttCfg, log);
  } catch (err) {
    const error = errorText(err);
    return clientIds.map((clientId) => ({ clientId, present: false, error }));
  }
  const results: SessionProbeResult[] = new Array<SessionProbeResult>(clientIds.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < clientIds.length) {
      const i = next++;
      const clientId = clientIds[i]!;
      const { result, delivered } = await probeOne(base, mqttCfg, clientId);
      log.debug({ ...result, delivered }, 'mqtt session probe');
      results[i] = result;
    }
  };
  const concurrency = Math.max(1, Math.floor(opts.concurrency ?? DEFAULT_CONCURRENCY));
  await Promise.all(Array.from({ length: Math.min(concurrency, clientIds.length) }, worker));
  return results;
}

async function probeOne(
  base: IClientOptions,
  cfg: Config['mqtt'],
  clientId: string,
): Promise<{ result: SessionProbeResult; delivered: number }> {
  const timeoutMs = cfg.connect_timeout_ms;
  const v5 = cfg.protocol_version === 5;
  const opts: IClientOptions = {
    ...base,
    clientId,
    // Clean start would discard the very session the probe looks for.
    clean: false,
    reconnectPeriod: 0,
    reconnectOnConnackError: false,
    connectTimeout: timeoutMs,
  };
  if (v5) {
    opts.properties = {
      // The broker hands this connection queued messages it will never acknowledge; with 1 it
      // hands over one, and the real owner gets the rest without the duplicate flag.
      receiveMaximum: 1,
      // The CONNECT's expiry replaces the session's, and 0 would make the broker delete the
      // session at this probe's disconnect. A config with 0 keeps no session of its own, so an
      // orphan is from an earlier config: keep it until someone acts on the report.
      sessionExpiryInterval: cfg.session_expiry_s > 0 ? cfg.session_expiry_s : NEVER_EXPIRES,
    };
  }

  let first: Connected;
  try {
    first = await connectOnce(opts, timeoutMs);
  } catch (err) {
    return { result: { clientId, present: false, error: errorText(err) }, delivered: 0 };
  }
  const done = (result: SessionProbeResult) => ({ result, delivered: first.delivered() });
  const cleanupBy = Date.now() + timeoutMs;
  const left = (): number => Math.max(1, cleanupBy - Date.now());

  if (first.sessionPresent) {
    // A plain DISCONNECT keeps the session, with the expiry the CONNECT set, and the messages
    // the broker sent this connection stay unacknowledged in it, to be sent again on resume.
    await disconnect(first.client, left());
    return done({ clientId, present: true });
  }

  // No session was there: this connect created an empty one (no subscription, so nothing can
  // queue in it), which a later probe would report as an orphan. Remove it.
  try {
    if (v5) {
      const sent = await disconnect(first.client, left(), { sessionExpiryInterval: 0 });
      if (!sent) throw new Error('DISCONNECT with session expiry 0 not confirmed in time');
    } else {
      // MQTT 3.1.1 can only end a session by connecting with clean session set.
      await disconnect(first.client, left());
      const again = await connectOnce({ ...opts, clean: true }, left());
      await disconnect(again.client, left());
    }
  } catch (err) {
    return done({
      clientId,
      present: false,
      error: `could not remove the empty session the probe created: ${errorText(err)}`,
    });
  }
  return done({ clientId, present: false });
}

interface Connected {
  readonly client: MqttClient;
  readonly sessionPresent: boolean;
  /** PUBLISH packets the broker sent this connection so far (none of them acknowledged). */
  readonly delivered: () => number;
}

/** One connection attempt, never retried; rejects on error, close or timeout. */
function connectOnce(opts: IClientOptions, timeoutMs: number): Promise<Connected> {
  return new Promise((resolve, reject) => {
    const client = mqtt.connect(opts);
    try {
      // Installed before any packet is read. mqtt.js acknowledges every QoS 1/2 PUBLISH itself
      // (MQTT 3.1.1 has no customHandleAcks); with this no PUBACK, PUBREC or PUBCOMP leaves
      // the client, and mqtt.js reads on as if it had.
      interceptAcks(client, {
        onAck: (done) => done(),
        onQoS0: (done) => done(),
        onPubcomp: () => undefined,
        beforeDisconnect: () => undefined,
      });
    } catch (err) {
      client.end(true);
      reject(err instanceof Error ? err : new Error(String(err)));
      return;
    }
    let delivered = 0;
    client.on('packetreceive', (packet) => {
      if (packet.cmd === 'publish') delivered++;
    });
    let settled = false;
    const fail = (err: Error): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      client.end(true);
      reject(err);
    };
    // mqtt.js has its own connect timeout; this one also covers a stall in the TLS handshake
    // or a stream that never reports anything.
    const timer = setTimeout(() => fail(new Error(`no CONNACK within ${timeoutMs} ms`)), timeoutMs);
    client.once('connect', (connack) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve({ client, sessionPresent: connack.sessionPresent, delivered: () => delivered });
    });
    client.on('error', fail);
    client.once('close', () => fail(new Error('connection closed before CONNACK')));
  });
}

/**
 * Sends DISCONNECT (with `properties`, MQTT 5) and waits until the socket closed; true when it
 * did in time. After the timeout the socket is destroyed: the broker then sees a lost
 * connection, which keeps a session too.
 */
function disconnect(
  client: MqttClient,
  timeoutMs: number,
  properties?: { sessionExpiryInterval: number },
): Promise<boolean> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      client.end(true);
      resolve(false);
    }, timeoutMs);
    client.end(false, properties ? { properties } : {}, () => {
      clearTimeout(timer);
      resolve(true);
    });
  });
}

function errorText(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const code = (err as { code?: unknown }).code;
  return code === undefined || err.message.includes(String(code))
    ? err.message
    : `${err.message} (${String(code)})`;
}
