/**
 * When the gate writes PUBCOMPs: with the next PUBACK/PUBREC batch, else on their own at the
 * next I/O turn, at most one PUBCOMP-only write per millisecond. Against a stand-in for the
 * mqtt.js client internals the seam takes over (the real client: seam-mqtt-client.test.ts).
 */
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { describe, test } from 'node:test';
import type { MqttClient } from 'mqtt';
import { AckGate } from '../../src/pipeline/6-mqtt-ack/ack-gate';

const PUBACK = 0x40;
const PUBCOMP = 0x70;

/** What the gate sees of mqtt.js: the hooks it replaces and a socket that records writes. */
function fakeClient(): { client: MqttClient; writes: Buffer[]; pubrel: (id: number) => void } {
  const writes: Buffer[] = [];
  const c = Object.assign(new EventEmitter(), {
    connected: true,
    options: { keepalive: 0 },
    stream: { write: (b: Buffer) => writes.push(Buffer.from(b)) },
    _sendPacket: () => undefined,
    _trackIncomingQoS2Publish: () => true,
    handleMessage: () => undefined,
    reschedulePing: () => undefined,
  });
  const client = c as unknown as MqttClient;
  // mqtt.js answers a PUBREL by sending PUBCOMP through _sendPacket, which the gate replaced.
  const pubrel = (id: number): void =>
    (c as unknown as { _sendPacket: (p: object, cb: () => void) => void })._sendPacket(
      { cmd: 'pubcomp', messageId: id },
      () => undefined,
    );
  return { client, writes, pubrel };
}

/** [type, packet id] of each 4-byte ack in a write. */
function acks(b: Buffer): [number, number][] {
  const out: [number, number][] = [];
  for (let off = 0; off < b.length; off += 4) out.push([b[off]!, b.readUInt16BE(off + 2)]);
  return out;
}

const immediate = (): Promise<void> => new Promise((r) => setImmediate(r));

/** The gate's clock: time passes only when a test says so. */
function testClock(): { now: () => number; advance: (ms: number) => void } {
  let t = 1_000;
  return { now: () => t, advance: (ms) => (t += ms) };
}
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe('ack gate: PUBCOMP writes', () => {
  test('PUBCOMPs of one I/O turn go out together at the next turn', async () => {
    const { client, writes, pubrel } = fakeClient();
    new AckGate(client, { onPublish: () => undefined, admit: (next) => next() });
    pubrel(1);
    pubrel(2);
    assert.equal(writes.length, 0, 'not written synchronously');
    await immediate();
    assert.deepEqual(writes.map(acks), [
      [
        [PUBCOMP, 1],
        [PUBCOMP, 2],
      ],
    ]);
  });

  // Whether a held PUBCOMP's timer fires before a given I/O turn depends on real time, so these
  // tests observe only what follows from the order of calls: a PUBCOMP pending when acks are
  // written goes with them, and its own scheduled write is cancelled.
  test('within 1 ms of a PUBCOMP write the next rides on an ack write, and is written once', async () => {
    const { client, writes, pubrel } = fakeClient();
    const clock = testClock();
    const gate = new AckGate(
      client,
      { onPublish: () => undefined, admit: (next) => next() },
      clock.now,
    );
    pubrel(1);
    await immediate();
    assert.equal(writes.length, 1);
    clock.advance(0.5);
    pubrel(2);
    gate.release([{ qos: 1, messageId: 7, conn: gate.connection }]);
    assert.deepEqual(acks(writes[1]!), [
      [PUBCOMP, 2],
      [PUBACK, 7],
    ]);
    await sleep(5);
    assert.equal(writes.length, 2, 'its own write was cancelled');
  });

  test('a PUBCOMP held by the gap is written when the gap ends; after a quiet gap at once', async () => {
    const { client, writes, pubrel } = fakeClient();
    const clock = testClock();
    new AckGate(client, { onPublish: () => undefined, admit: (next) => next() }, clock.now);
    pubrel(1);
    await immediate();
    clock.advance(0.5);
    pubrel(2);
    await sleep(10);
    assert.deepEqual(writes.map(acks), [[[PUBCOMP, 1]], [[PUBCOMP, 2]]]);
    clock.advance(1);
    pubrel(3);
    await immediate();
    assert.deepEqual(acks(writes[2]!), [[PUBCOMP, 3]], 'no wait after a quiet gap');
  });

  test('PUBCOMPs pending when the connection closes are dropped (the broker re-sends PUBREL)', async () => {
    const { client, writes, pubrel } = fakeClient();
    new AckGate(client, { onPublish: () => undefined, admit: (next) => next() });
    pubrel(1);
    client.emit('close');
    await sleep(5);
    assert.equal(writes.length, 0);
  });
});
