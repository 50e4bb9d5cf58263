import assert from 'node:assert/strict';
import { test } from 'node:test';
import mqttPacket from 'mqtt-packet';
import type { IPublishPacket, Packet } from 'mqtt-packet';
import {
  PUBLISH,
  PacketReader,
  decodePublish,
  decodeSuback,
  encodeConnect,
  encodeSubscribe,
  publishView,
  writePuback,
  writePubcomp,
  writePubrec,
} from '../../benchmark/load/raw-mqtt';
import type { ProtocolVersion, QoS } from '../../benchmark/types';
import { RawSubscriberSink } from '../../benchmark/ceilings/raw-subscriber';
import { decodeAll, generate, listenLocal } from '../helpers/mqtt-codec';

interface Seen {
  topic: string;
  qos: QoS;
  packetId: number;
  dup: boolean;
  retain: boolean;
  payload: string;
}

/** A reader and decoder as the subscriber wires them; returns what it saw. */
function parser(v: ProtocolVersion): { reader: PacketReader; seen: Seen[] } {
  const seen: Seen[] = [];
  const view = publishView();
  const reader = new PacketReader((h, b, s, e) => {
    assert.equal(h >> 4, PUBLISH);
    const p = decodePublish(h, b, s, e, v, view);
    seen.push({
      topic: p.buf.toString('utf8', p.topicStart, p.topicEnd),
      qos: p.qos,
      packetId: p.packetId,
      dup: p.dup,
      retain: p.retain,
      payload: p.buf.toString('latin1', p.payloadStart, p.payloadEnd),
    });
  });
  return { reader, seen };
}

function publishes(v: ProtocolVersion): IPublishPacket[] {
  const list: IPublishPacket[] = [];
  let id = 1;
  for (const qos of [0, 1, 2] as const) {
    for (const [topic, size] of [
      ['bench/0', 100],
      ['a', 0],
      ['bench/ünïcode/7', 300], // a 2-byte remaining length
    ] as const) {
      list.push({
        cmd: 'publish',
        topic,
        qos,
        dup: qos === 2 && size === 0,
        retain: size === 300,
        payload: Buffer.from('p'.repeat(size) + `${qos}`),
        ...(qos > 0 ? { messageId: qos === 2 ? 65535 - id++ : id++ } : {}),
        // Properties the subscriber must skip without acting on them.
        ...(v === 5 && size === 100
          ? {
              properties: {
                messageExpiryInterval: 60,
                contentType: 'application/octet-stream',
                userProperties: { k: 'v' },
              },
            }
          : {}),
      } as IPublishPacket);
    }
  }
  return list;
}

function expected(list: readonly IPublishPacket[]): Seen[] {
  return list.map((p) => ({
    topic: p.topic,
    qos: p.qos,
    packetId: p.messageId ?? 0,
    dup: p.dup,
    retain: p.retain,
    payload: Buffer.from(p.payload as Buffer).toString('latin1'),
  }));
}

for (const v of [4, 5] as const) {
  const list = publishes(v);
  const stream = Buffer.concat(list.map((p) => generate(p, v)));

  test(`MQTT ${v}: PUBLISH QoS 0/1/2, several per chunk, split at every byte`, () => {
    const whole = parser(v);
    whole.reader.push(stream);
    assert.deepEqual(whole.seen, expected(list));
    for (let i = 1; i < stream.length; i++) {
      const p = parser(v);
      p.reader.push(stream.subarray(0, i));
      p.reader.push(stream.subarray(i));
      assert.deepEqual(p.seen, expected(list), `split at byte ${i}`);
      assert.equal(p.reader.buffered, 0);
    }
  });

  test(`MQTT ${v}: PUBLISH stream one byte at a time`, () => {
    const p = parser(v);
    for (let i = 0; i < stream.length; i++) p.reader.push(stream.subarray(i, i + 1));
    assert.deepEqual(p.seen, expected(list));
  });

  test(`MQTT ${v}: PUBACK, PUBREC, PUBCOMP as mqtt-packet reads them`, () => {
    const b = Buffer.alloc(12);
    let o = writePuback(b, 0, 1);
    o = writePubrec(b, o, 65535);
    o = writePubcomp(b, o, 258);
    assert.equal(o, 12);
    const packets = decodeAll(b, v);
    assert.deepEqual(
      packets.map((p) => [p.cmd, 'messageId' in p ? p.messageId : undefined]),
      [
        ['puback', 1],
        ['pubrec', 65535],
        ['pubcomp', 258],
      ],
    );
    for (const p of packets) {
      // MQTT 5: a left-out reason code means success (0x00).
      if ('reasonCode' in p) assert.ok(p.reasonCode === undefined || p.reasonCode === 0);
    }
  });

  test(`MQTT ${v}: SUBSCRIBE to one filter at each QoS`, () => {
    for (const qos of [0, 1, 2] as const) {
      const [p, ...rest] = decodeAll(encodeSubscribe(7, 'bench-ü/#', qos, v), v);
      assert.equal(rest.length, 0);
      assert.equal(p?.cmd, 'subscribe');
      if (p?.cmd !== 'subscribe') return;
      assert.equal(p.messageId, 7);
      assert.equal(p.subscriptions.length, 1);
      assert.equal(p.subscriptions[0]?.topic, 'bench-ü/#');
      assert.equal(p.subscriptions[0]?.qos, qos);
    }
  });

  test(`MQTT ${v}: SUBACK granted and failure codes`, () => {
    const check = (packet: Packet, codes: number[], reason?: string) => {
      const s = decodeSuback(generate(packet, v), v);
      assert.equal(s.packetId, 9);
      assert.deepEqual(s.codes, codes);
      assert.equal(s.reasonString, reason);
    };
    check({ cmd: 'suback', messageId: 9, granted: [2] }, [2]);
    check({ cmd: 'suback', messageId: 9, granted: [0x80] }, [0x80]);
    if (v === 5) {
      check(
        {
          cmd: 'suback',
          messageId: 9,
          granted: [0x87],
          properties: { reasonString: 'not for you' },
        },
        [0x87],
        'not for you',
      );
    }
  });
}

test('MQTT 5 CONNECT advertises the receive maximum; 3.1.1 has no properties', () => {
  const base = { clientId: 'c', keepaliveS: 60, cleanStart: true } as const;
  const [p5] = decodeAll(encodeConnect({ ...base, protocolVersion: 5, receiveMaximum: 65535 }), 5);
  assert.equal(p5?.cmd, 'connect');
  if (p5?.cmd === 'connect') assert.equal(p5.properties?.receiveMaximum, 65535);
  const [p4] = decodeAll(encodeConnect({ ...base, protocolVersion: 4 }), 4);
  assert.equal(p4?.cmd, 'connect');
  assert.throws(() => encodeConnect({ ...base, protocolVersion: 5, receiveMaximum: 0 }));
});

/**
 * A broker for one subscriber: `connack` (default: accepted), SUBACK with `granted`, then
 * `burst` (written as given, one write per element) once subscribed; every packet from the
 * subscriber is recorded with the index of the socket read it came in.
 */
async function broker(
  v: ProtocolVersion,
  granted: number,
  burst: Buffer[],
  answer: (p: Packet) => Packet[] = () => [],
  connack: Packet = { cmd: 'connack', returnCode: 0, reasonCode: 0, sessionPresent: false },
) {
  const received: { packet: Packet; read: number }[] = [];
  const state = { closed: false };
  const { port, close } = await listenLocal((socket) => {
    const parser = mqttPacket.parser({ protocolVersion: v });
    let read = 0;
    socket.on('close', () => (state.closed = true));
    parser.on('packet', (p) => {
      received.push({ packet: p, read });
      if (p.cmd === 'connect') socket.write(generate(connack, v));
      else if (p.cmd === 'subscribe') {
        socket.write(generate({ cmd: 'suback', messageId: p.messageId, granted: [granted] }, v));
        for (const b of burst) socket.write(b);
      } else for (const out of answer(p)) socket.write(generate(out, v));
    });
    socket.on('data', (c) => {
      read++;
      parser.parse(c);
    });
  });
  return { port, received, state, close };
}

async function until(cond: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 5_000;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

for (const v of [4, 5] as const) {
  test(`MQTT ${v} sink: QoS 2 delivers once, PUBREC per PUBLISH, PUBCOMP per PUBREL`, async () => {
    const n = 300;
    const pubs = Array.from({ length: n }, (_, i) =>
      generate(
        {
          cmd: 'publish',
          topic: 't/1',
          qos: 2,
          dup: false,
          retain: false,
          messageId: i + 1,
          payload: Buffer.from(`m${i}`),
        },
        v,
      ),
    );
    // A resend of message 1 before its PUBREL: acknowledged again, not delivered twice.
    const resend = generate(
      {
        cmd: 'publish',
        topic: 't/1',
        qos: 2,
        dup: true,
        retain: false,
        messageId: 1,
        payload: Buffer.from('m0'),
      },
      v,
    );
    const b = await broker(
      v,
      2,
      [Buffer.concat(pubs.slice(0, 100)), Buffer.concat([...pubs.slice(100), resend])],
      (p) => (p.cmd === 'pubrec' ? [{ cmd: 'pubrel', messageId: p.messageId }] : []),
    );
    const sink = new RawSubscriberSink('127.0.0.1', b.port, v, 't/#', 2);
    const got: string[] = [];
    try {
      await sink.start((value) => got.push(value.toString()));
      await until(
        () => b.received.filter((r) => r.packet.cmd === 'pubcomp').length >= n + 1,
        'PUBCOMPs',
      );
      const info = await sink.stop();
      await until(() => b.received.some((r) => r.packet.cmd === 'disconnect'), 'DISCONNECT');
      assert.deepEqual(
        got,
        Array.from({ length: n }, (_, i) => `m${i}`),
      );
      const cmds = (c: string) => b.received.filter((r) => r.packet.cmd === c);
      assert.equal(cmds('pubrec').length, n + 1);
      // The resend's PUBREC draws a second PUBREL for id 1 from this broker, so n + 1.
      assert.equal(cmds('pubcomp').length, n + 1);
      assert.equal(info['duplicatesDropped'], 1);
      assert.equal(info['error'], undefined);
      // One ack write per read: never more writes than the reads that carried packets.
      assert.ok((info['ackWrites'] as number) <= (info['reads'] as number));
    } finally {
      b.close();
    }
  });
}

test('sink: QoS 1 PUBACKs, every one of a large read in one write', async () => {
  const n = 20_000; // more acks than one 64 KB slab holds
  const burst = Buffer.concat(
    Array.from({ length: n }, (_, i) =>
      generate(
        {
          cmd: 'publish',
          topic: 'q',
          qos: 1,
          dup: false,
          retain: false,
          messageId: (i % 65535) + 1,
          payload: Buffer.from('x'),
        },
        5,
      ),
    ),
  );
  const b = await broker(5, 1, [burst]);
  const sink = new RawSubscriberSink('127.0.0.1', b.port, 5, 'q', 1);
  let got = 0;
  try {
    await sink.start(() => got++);
    await until(() => b.received.filter((r) => r.packet.cmd === 'puback').length >= n, 'PUBACKs');
    const acks = b.received.filter((r) => r.packet.cmd === 'puback');
    assert.equal(got, n);
    assert.deepEqual(
      acks.map((r) => (r.packet as { messageId: number }).messageId),
      Array.from({ length: n }, (_, i) => (i % 65535) + 1),
    );
    const info = await sink.stop();
    assert.ok((info['ackWrites'] as number) <= (info['reads'] as number));
  } finally {
    b.close();
  }
});

test('sink: a SUBACK failure code fails start() with the reason named', async () => {
  const b = await broker(5, 0x87, []);
  const sink = new RawSubscriberSink('127.0.0.1', b.port, 5, 'x/#', 1);
  try {
    await assert.rejects(
      sink.start(() => {}),
      /SUBSCRIBE "x\/#" refused: 0x87 not authorized/,
    );
    await sink.stop();
  } finally {
    b.close();
  }
});

test('sink: a lower granted QoS fails start()', async () => {
  const b = await broker(4, 0, []);
  const sink = new RawSubscriberSink('127.0.0.1', b.port, 4, 'x/#', 2);
  try {
    await assert.rejects(
      sink.start(() => {}),
      /granted QoS 0, asked for 2/,
    );
  } finally {
    b.close();
  }
});

test('sink: a refused CONNACK fails start() with the reason named', async () => {
  const b = await broker(5, 1, [], undefined, {
    cmd: 'connack',
    reasonCode: 0x87,
    sessionPresent: false,
    properties: { reasonString: 'no subscribers here' },
  });
  const sink = new RawSubscriberSink('127.0.0.1', b.port, 5, 'x/#', 1);
  try {
    await assert.rejects(
      sink.start(() => {}),
      /raw subscriber: CONNACK refused: 0x87 not authorized \(no subscribers here\)/,
    );
    assert.ok(!b.received.some((r) => r.packet.cmd === 'subscribe'), 'no SUBSCRIBE after it');
  } finally {
    b.close();
  }
});

test('sink: a DISCONNECT from the broker mid-run ends it, the reason in sinkInfo.error', async () => {
  const bye = generate(
    { cmd: 'disconnect', reasonCode: 0x8b, properties: { reasonString: 'maintenance' } },
    5,
  );
  const b = await broker(5, 1, [bye]);
  const sink = new RawSubscriberSink('127.0.0.1', b.port, 5, 'x/#', 1);
  try {
    await sink.start(() => {});
    await until(() => b.state.closed, 'the subscriber to close its connection');
    const info = await sink.stop();
    assert.equal(
      info['error'],
      'the broker sent DISCONNECT: reason 0x8b server shutting down (maintenance)',
    );
  } finally {
    b.close();
  }
});
