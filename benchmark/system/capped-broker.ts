/**
 * The broker of the capped cases of `compare.ts`: on a port of its own, it allows a subscriber
 * only N unacknowledged QoS 1/2 messages. Started for the case and stopped by its PID; nothing
 * else is touched.
 *
 * - `mosquitto` (default): a second mosquitto with `max_inflight_messages N`, a child of the
 *   benchmark. mosquitto 2.0 applies it to MQTT 3.1.1 subscribers. An MQTT 5 subscriber that
 *   sends a receive maximum gets that instead (the cap does not lower it), one that sends none
 *   gets the cap; every MQTT 5 client is told the cap as the broker's receive maximum in CONNACK.
 *   mosquitto 2.0.11 (Debian 12) keeps the cap only until the subscriber's first ack: each PUBACK
 *   of the oldest message in flight releases up to N queued messages (it counts the messages in
 *   flight ahead of the acked one, not all of them), so with a backlog the number in flight grows
 *   far past N.
 * - `hivemq`: HiveMQ CE through `scripts/broker2` (MKF_BROKER2=hivemq) with HIVEMQ_MAX_INFLIGHT
 *   N: its in-flight window towards every subscriber, MQTT 3.1.1 and 5 alike, whatever the
 *   client's receive maximum. It fills the window only as acks come in: a subscriber that never
 *   acks gets about a dozen messages, whatever N.
 *
 * `probeInflight` measures this at every start, and the compare result records it, for a 3.1.1
 * subscriber, an MQTT 5 one without receive maximum and one with 65535: never acking (how many it
 * gets at once) and acking each message 5 ms late under a backlog (whether the cap holds).
 */
import { execFile, spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import mqttPacket from 'mqtt-packet';
import type { CappedBrokerInfo, CappedBrokerKind, InflightProbe } from '../types';
import { REPO_ROOT } from './forwarder-process';

const START_TIMEOUT_MS = 10_000;
const STOP_TIMEOUT_MS = 10_000;
/** scripts/broker2 builds HiveMQ the first time (Maven): bound that too. */
const BROKER2_TIMEOUT_MS = 300_000;
/** Messages a no-ack probe publishes beyond the cap: a capped subscriber receives none of them. */
const PROBE_EXTRA = 30;
/** The acking probe: each ack this late, a backlog of this many caps. */
const PROBE_ACK_DELAY_MS = 5;
const PROBE_BACKLOG_CAPS = 10;
const PROBE_TIMEOUT_MS = 20_000;
/** The no-ack probe ends after the subscriber received nothing for this long. */
const PROBE_QUIET_MS = 1_000;

function mosquittoBinary(): string {
  for (const p of ['/usr/sbin/mosquitto', '/usr/local/sbin/mosquitto']) if (existsSync(p)) return p;
  return 'mosquitto';
}

function answers(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    execFile(
      'mosquitto_sub',
      ['-h', '127.0.0.1', '-p', String(port), '-t', '$SYS/broker/version', '-C', '1', '-W', '2'],
      { timeout: 5_000, killSignal: 'SIGKILL' },
      (err) => resolve(!err),
    );
  });
}

function portAnswers(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port });
    const done = (v: boolean): void => {
      s.destroy();
      resolve(v);
    };
    s.setTimeout(1_000, () => done(false));
    s.once('connect', () => done(true));
    s.once('error', () => done(false));
  });
}

/** One MQTT connection for the probe: sends packets, hands back the decoded ones. */
function connection(
  port: number,
  version: 4 | 5,
  onPacket: (p: mqttPacket.Packet) => void,
): net.Socket {
  const socket = net.connect({ host: '127.0.0.1', port });
  socket.setNoDelay(true);
  const parser = mqttPacket.parser({ protocolVersion: version });
  parser.on('packet', onPacket);
  socket.on('data', (c: Buffer) => parser.parse(c));
  socket.on('error', () => undefined);
  return socket;
}

function send(socket: net.Socket, packet: Record<string, unknown>, version: 4 | 5): void {
  socket.write(
    mqttPacket.generate(packet as unknown as mqttPacket.Packet, { protocolVersion: version }),
  );
}

function connectPacket(clientId: string, version: 4 | 5, receiveMaximum?: number) {
  return {
    cmd: 'connect',
    protocolId: 'MQTT',
    protocolVersion: version,
    clientId,
    clean: true,
    keepalive: 30,
    ...(version === 5 && receiveMaximum !== undefined ? { properties: { receiveMaximum } } : {}),
  };
}

/**
 * A subscriber (`version`, with `receiveMaximum` sent or not) and a 3.1.1 publisher of a backlog
 * of QoS 1 messages. `ackDelayMs` undefined: the subscriber never acks, and the result says how
 * many it received (the cap it got). Otherwise it acks each message that long after it arrived,
 * and the result says how many were unacknowledged at most (whether the cap holds).
 */
export function probeInflight(
  port: number,
  cap: number,
  version: 4 | 5,
  receiveMaximum: number | undefined,
  ackDelayMs?: number,
): Promise<InflightProbe> {
  const client =
    (version === 4
      ? 'MQTT 3.1.1'
      : receiveMaximum === undefined
        ? 'MQTT 5 without receive maximum'
        : `MQTT 5, receive maximum ${receiveMaximum}`) +
    (ackDelayMs === undefined ? ', never acking' : `, acking ${ackDelayMs} ms late`);
  const published =
    ackDelayMs === undefined ? cap + PROBE_EXTRA : Math.max(200, cap * PROBE_BACKLOG_CAPS);
  const id = `${process.pid}-${Date.now().toString(36)}-${version}-${receiveMaximum ?? 0}-${ackDelayMs ?? 'n'}`;
  const topic = `mkfcmp-probe/${id}`;
  return new Promise((resolve, reject) => {
    let received = 0;
    let unacked = 0;
    let maxUnacked = 0;
    let pubAcked = 0;
    let lastReceiveAt = performance.now();
    let finished = false;
    let pub: net.Socket | undefined;
    const finish = (err?: Error): void => {
      if (finished) return;
      finished = true;
      clearTimeout(timer);
      sub.destroy();
      pub?.destroy();
      if (err) reject(err);
      else {
        resolve({
          client,
          published,
          received,
          ...(ackDelayMs === undefined ? {} : { ackDelayMs }),
          maxUnacked,
        });
      }
    };
    const timer = setTimeout(
      () =>
        finish(
          new Error(
            `probe (${client}) did not finish within ${PROBE_TIMEOUT_MS} ms (received ${received} of ${published})`,
          ),
        ),
      PROBE_TIMEOUT_MS,
    );
    const startPublisher = (): void => {
      pub = connection(port, 4, (q) => {
        if (q.cmd === 'connack') {
          for (let i = 1; i <= published; i++) {
            send(
              pub!,
              {
                cmd: 'publish',
                topic,
                payload: Buffer.from(String(i)),
                qos: 1,
                messageId: i,
                retain: false,
                dup: false,
              },
              4,
            );
          }
        } else if (q.cmd === 'puback' && ++pubAcked === published && ackDelayMs === undefined) {
          // Done once the subscriber has received nothing for a while: a broker may deliver a
          // little later than it acknowledges (HiveMQ does).
          const quiet = setInterval(() => {
            if (finished) clearInterval(quiet);
            else if (performance.now() - lastReceiveAt > PROBE_QUIET_MS) {
              clearInterval(quiet);
              finish();
            }
          }, 100);
        }
      });
      send(pub, connectPacket(`mkfcmp-probe-pub-${id}`, 4), 4);
    };
    const sub = connection(port, version, (p) => {
      if (p.cmd === 'connack') {
        send(sub, { cmd: 'subscribe', messageId: 1, subscriptions: [{ topic, qos: 1 }] }, version);
      } else if (p.cmd === 'suback') {
        startPublisher();
      } else if (p.cmd === 'publish') {
        received++;
        lastReceiveAt = performance.now();
        maxUnacked = Math.max(maxUnacked, ++unacked);
        if (ackDelayMs === undefined) return;
        const messageId = p.messageId;
        setTimeout(() => {
          if (finished) return;
          unacked--;
          send(
            sub,
            { cmd: 'puback', messageId, ...(version === 5 ? { reasonCode: 0 } : {}) },
            version,
          );
          if (received === published && unacked === 0) finish();
        }, ackDelayMs);
      }
    });
    send(sub, connectPacket(`mkfcmp-probe-sub-${id}`, version, receiveMaximum), version);
  });
}

function runBroker2(
  cmd: string,
  env: NodeJS.ProcessEnv,
): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve) => {
    execFile(
      path.join(REPO_ROOT, 'scripts', 'broker2'),
      [cmd],
      { env, timeout: BROKER2_TIMEOUT_MS, killSignal: 'SIGKILL', maxBuffer: 16 * 1024 * 1024 },
      (err, stdout, stderr) => {
        const code = err ? (typeof err.code === 'number' ? err.code : null) : 0;
        resolve({ code, out: `${stdout}${stderr}`.trim() });
      },
    );
  });
}

export class CappedBroker {
  private probes: InflightProbe[] = [];

  private constructor(
    readonly kind: CappedBrokerKind,
    readonly port: number,
    readonly maxInflight: number,
    readonly pid: number,
    /** Stops it by its PID (mosquitto: our child; hivemq: scripts/broker2 down, by its pid file). */
    private readonly stopBroker: () => Promise<void>,
  ) {}

  info(): CappedBrokerInfo {
    return {
      kind: this.kind,
      port: this.port,
      maxInflight: this.maxInflight,
      pid: this.pid,
      probes: this.probes,
      holds: this.holds(),
    };
  }

  /** The acking probe never had more than the cap unacknowledged. */
  holds(): boolean {
    const steady = this.probes.find(
      (p) => p.ackDelayMs !== undefined && p.client.startsWith('MQTT 3.1.1'),
    );
    return steady !== undefined && steady.maxUnacked <= this.maxInflight;
  }

  /** Starts it (config and log in `dir`), waits until it answers, probes the cap (bounded). */
  static async start(
    kind: CappedBrokerKind,
    port: number,
    maxInflight: number,
    dir: string,
  ): Promise<CappedBroker> {
    if (await portAnswers(port)) {
      throw new Error(`port 127.0.0.1:${port} for the capped broker is taken; choose another`);
    }
    mkdirSync(dir, { recursive: true });
    const broker =
      kind === 'mosquitto'
        ? await CappedBroker.startMosquitto(port, maxInflight, dir)
        : await CappedBroker.startHivemq(port, maxInflight, dir);
    try {
      const clients: [4 | 5, number | undefined][] = [
        [4, undefined],
        [5, undefined],
        [5, 65535],
      ];
      for (const ackDelay of [undefined, PROBE_ACK_DELAY_MS]) {
        for (const [version, receiveMaximum] of clients) {
          broker.probes.push(
            await probeInflight(port, maxInflight, version, receiveMaximum, ackDelay),
          );
        }
      }
    } catch (err) {
      await broker.stop();
      throw err;
    }
    // Without acks no broker may send a 3.1.1 subscriber more than the cap. (It may send fewer:
    // HiveMQ delivers about a dozen at once and the rest of its window only as acks come in.)
    const capped = broker.probes[0]!;
    if (capped.received > maxInflight) {
      await broker.stop();
      throw new Error(
        `capped ${kind}: an MQTT 3.1.1 subscriber that never acks received ${capped.received} of ${capped.published}, more than the cap of ${maxInflight}`,
      );
    }
    return broker;
  }

  private static async startMosquitto(
    port: number,
    maxInflight: number,
    dir: string,
  ): Promise<CappedBroker> {
    const confFile = path.join(dir, `mosquitto-inflight${maxInflight}.conf`);
    const logFile = path.join(dir, `mosquitto-inflight${maxInflight}.log`);
    const root = process.getuid?.() === 0;
    writeFileSync(
      confFile,
      [
        '# Written by benchmark/system/capped-broker.ts for a capped case of benchmark/compare.ts.',
        `listener ${port} 127.0.0.1`,
        'allow_anonymous true',
        '# As the stack: no queue limit, so a slow subscriber loses nothing in the broker.',
        'max_queued_messages 0',
        '# The case: at most this many unacknowledged QoS 1/2 messages per (MQTT 3.1.1) subscriber.',
        `max_inflight_messages ${maxInflight}`,
        '# A throwaway broker: no persistence (the stack has it on; it costs nothing per message).',
        'persistence false',
        ...(root
          ? ['# Started as root: stay root rather than switch to user mosquitto.', 'user root']
          : []),
        '',
      ].join('\n'),
    );
    const fd = openSync(logFile, 'a');
    const child: ChildProcess = spawn(mosquittoBinary(), ['-c', confFile], {
      stdio: ['ignore', fd, fd],
    });
    closeSync(fd);
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    let dead = false;
    void exited.then(() => (dead = true));
    const stop = async (): Promise<void> => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), STOP_TIMEOUT_MS);
      await exited;
      clearTimeout(timer);
    };
    writeFileSync(path.join(dir, `mosquitto-inflight${maxInflight}.pid`), `${child.pid}\n`);
    const deadline = Date.now() + START_TIMEOUT_MS;
    while (!(await answers(port))) {
      if (dead) throw new Error(`capped mosquitto exited during start; read ${logFile}`);
      if (Date.now() > deadline) {
        await stop();
        throw new Error(
          `capped mosquitto not answering after ${START_TIMEOUT_MS} ms; read ${logFile}`,
        );
      }
      await new Promise((r) => setTimeout(r, 200));
    }
    return new CappedBroker('mosquitto', port, maxInflight, child.pid!, stop);
  }

  private static async startHivemq(
    port: number,
    maxInflight: number,
    dir: string,
  ): Promise<CappedBroker> {
    const state = path.join(dir, `hivemq-inflight${maxInflight}`);
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      MKF_BROKER2: 'hivemq',
      BROKER2_PORT: String(port),
      MKF_BROKER2_DIR: state,
      HIVEMQ_MAX_INFLIGHT: String(maxInflight),
    };
    const up = await runBroker2('up', env);
    if (up.code !== 0)
      throw new Error(`scripts/broker2 up (hivemq) failed: ${up.out.slice(-1500)}`);
    const pid = Number(readFileSync(path.join(state, 'hivemq.pid'), 'utf8').trim());
    const stop = async (): Promise<void> => {
      const down = await runBroker2('down', env);
      if (down.code !== 0) throw new Error(`scripts/broker2 down (hivemq) failed: ${down.out}`);
    };
    return new CappedBroker('hivemq', port, maxInflight, pid, stop);
  }

  async stop(): Promise<void> {
    await this.stopBroker();
  }
}
