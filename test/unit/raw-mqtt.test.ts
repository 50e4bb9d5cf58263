import assert from 'node:assert/strict';
import { test } from 'node:test';
import mqttPacket from 'mqtt-packet';
import type { Packet } from 'mqtt-packet';
import {
  DISCONNECT_PACKET,
  PacketReader,
  PINGREQ_PACKET,
  RawMqttPublisher,
  SLAB_BYTES,
  connackRefusal,
  decodeConnack,
  describeDisconnect,
  encodeConnect,
  encodeSubscribe,
  encodeTopic,
  publishSize,
  writePublish,
  writePubrel,
} from '../../benchmark/load/raw-mqtt';
import type { ProtocolVersion, QoS } from '../../benchmark/types';
import { decodeAll, generate, listenLocal } from '../helpers/mqtt-codec';

function publish(topic: string, qos: QoS, v: ProtocolVersion, id: number, payload: Buffer) {
  const t = encodeTopic(topic);
  const b = Buffer.alloc(publishSize(t, qos, v, payload.length));
  assert.equal(writePublish(b, 0, t, qos, v, id, payload), b.length, 'fills exactly its size');
  return b;
}

for (const v of [4, 5] as const) {
  test(`MQTT ${v}: CONNECT with clean start, keepalive and client id`, () => {
    const bytes = encodeConnect({
      protocolVersion: v,
      clientId: 'mkf-bench-pub-ab-0',
      keepaliveS: 60,
      cleanStart: true,
    });
    const [p, ...rest] = decodeAll(bytes, v);
    assert.equal(rest.length, 0);
    assert.equal(p?.cmd, 'connect');
    if (p?.cmd !== 'connect') return;
    assert.equal(p.protocolId, 'MQTT');
    assert.equal(p.protocolVersion, v);
    assert.equal(p.clean, true);
    assert.equal(p.keepalive, 60);
    assert.equal(p.clientId, 'mkf-bench-pub-ab-0');
    assert.equal(p.username, undefined);
    assert.equal(p.will, undefined);
  });

  for (const qos of [0, 1, 2] as const) {
    test(`MQTT ${v}: PUBLISH QoS ${qos}`, () => {
      const payload = Buffer.from('x'.repeat(100));
      const bytes = publish('benchmark/7', qos, v, 65535, payload);
      const [p] = decodeAll(bytes, v);
      assert.equal(p?.cmd, 'publish');
      if (p?.cmd !== 'publish') return;
      assert.equal(p.topic, 'benchmark/7');
      assert.equal(p.qos, qos);
      assert.equal(p.dup, false);
      assert.equal(p.retain, false);
      assert.equal(p.messageId, qos > 0 ? 65535 : undefined);
      assert.deepEqual(Buffer.from(p.payload as Buffer), payload);
    });
  }

  test(`MQTT ${v}: PUBLISH with a multi-byte remaining length and a UTF-8 topic`, () => {
    const payload = Buffer.alloc(20_000, 7);
    const bytes = publish('bänch/ü', 1, v, 1, payload);
    assert.equal(bytes[1]! & 0x80, 0x80, 'remaining length takes more than one byte');
    const [p] = decodeAll(bytes, v);
    assert.equal(p?.cmd === 'publish' && p.topic, 'bänch/ü');
    assert.equal(p?.cmd === 'publish' && (p.payload as Buffer).length, 20_000);
  });

  test(`MQTT ${v}: PUBREL, PINGREQ, DISCONNECT`, () => {
    const b = Buffer.alloc(4);
    writePubrel(b, 0, 0x1234);
    const packets = decodeAll(Buffer.concat([b, PINGREQ_PACKET, DISCONNECT_PACKET]), v);
    assert.deepEqual(
      packets.map((p) => p.cmd),
      ['pubrel', 'pingreq', 'disconnect'],
    );
    const rel = packets[0]!;
    assert.equal(rel.cmd === 'pubrel' && rel.messageId, 0x1234);
    // PUBREL's fixed header flags are reserved as 0010 (§3.6.1).
    assert.equal(b[0], 0x62);
  });
}

test('topic names with wildcards or empty are refused before anything is sent', () => {
  assert.throws(() => encodeTopic(''), /invalid topic/);
  assert.throws(() => encodeTopic('a/+/b'), /invalid topic/);
  assert.throws(() => encodeTopic('a/#'), /invalid topic/);
});

/** Acks of both versions, as a broker sends them (v5 with reason codes and properties). */
/** Per packet: its type, its body, and the whole packet (fixed header included). */
type Framed = [number, number[], number[]];

function ackStream(): { bytes: Buffer; expected: Framed[] } {
  const packets: [Packet, ProtocolVersion][] = [
    [{ cmd: 'connack', returnCode: 0, sessionPresent: false }, 4],
    [{ cmd: 'puback', messageId: 1 }, 4],
    [{ cmd: 'pubrec', messageId: 300 }, 4],
    [{ cmd: 'pubcomp', messageId: 300 }, 4],
    [{ cmd: 'puback', messageId: 2, reasonCode: 0x10 }, 5],
    [
      {
        cmd: 'puback',
        messageId: 3,
        reasonCode: 0x87,
        properties: { reasonString: 'not for you' },
      },
      5,
    ],
    [{ cmd: 'pingresp' }, 4],
  ];
  const bufs = packets.map(([p, v]) => generate(p, v));
  return {
    bytes: Buffer.concat(bufs),
    expected: bufs.map((b) => [b[0]! >> 4, [...b.subarray(b[1]! < 128 ? 2 : 3)], [...b]]),
  };
}

test('the reader returns every packet whole, whichever bytes the chunks split at', () => {
  const { bytes, expected } = ackStream();
  for (let cut1 = 0; cut1 <= bytes.length; cut1++) {
    for (let cut2 = cut1; cut2 <= bytes.length; cut2 += 3) {
      const got: Framed[] = [];
      const reader = new PacketReader((h, b, s, e, at) =>
        got.push([h >> 4, [...b.subarray(s, e)], [...b.subarray(at, e)]]),
      );
      reader.push(bytes.subarray(0, cut1));
      reader.push(bytes.subarray(cut1, cut2));
      reader.push(bytes.subarray(cut2));
      assert.deepEqual(got, expected, `cut at ${cut1} and ${cut2}`);
      assert.equal(reader.buffered, 0);
    }
  }
});

test('the reader takes a stream one byte at a time, including a 2-byte remaining length', () => {
  const big = generate(
    {
      cmd: 'connack',
      reasonCode: 0,
      sessionPresent: true,
      properties: { reasonString: 'r'.repeat(200) },
    },
    5,
  );
  const stream = Buffer.concat([big, ackStream().bytes]);
  const types: number[] = [];
  const reader = new PacketReader((h, b, _s, e, at) => {
    types.push(h >> 4);
    if (h >> 4 === 2 && types.length === 1) {
      const ack = decodeConnack(b.subarray(at, e), 5);
      assert.equal(ack.sessionPresent, true);
      assert.equal(ack.properties.reasonString, 'r'.repeat(200));
    }
  });
  for (let i = 0; i < stream.length; i++) reader.push(stream.subarray(i, i + 1));
  assert.deepEqual(types, [2, 2, 4, 5, 7, 4, 4, 13]);
  assert.equal(reader.buffered, 0);
});

test('the reader refuses a remaining length of more than 4 bytes and oversized packets', () => {
  const noop = () => {};
  assert.throws(
    () => new PacketReader(noop).push(Buffer.from([0x40, 0xff, 0xff, 0xff, 0xff, 0x01])),
    /malformed remaining length/,
  );
  assert.throws(
    () => new PacketReader(noop, 100).push(Buffer.from([0x40, 0xe8, 0x07])),
    /exceeds the limit/,
  );
});

test('CONNACK decoding: 3.1.1 return code, MQTT 5 reason code and properties', () => {
  const v4 = generate({ cmd: 'connack', returnCode: 5, sessionPresent: false }, 4);
  assert.equal(decodeConnack(v4, 4).code, 5);
  // A 3.1.1-only broker answers an MQTT 5 CONNECT with a 3.1.1 CONNACK.
  assert.equal(decodeConnack(Buffer.from([0x20, 0x02, 0x00, 0x05]), 5).code, 5);
  const v5 = generate(
    {
      cmd: 'connack',
      reasonCode: 0,
      sessionPresent: false,
      properties: {
        receiveMaximum: 20,
        maximumQoS: 1,
        serverKeepAlive: 30,
        maximumPacketSize: 1000,
        userProperties: { a: 'b' },
        assignedClientIdentifier: 'x',
      },
    },
    5,
  );
  const ack = decodeConnack(v5, 5);
  assert.equal(ack.code, 0);
  const { receiveMaximum, maximumQoS, serverKeepAlive, maximumPacketSize } = ack.properties;
  assert.deepEqual(
    { receiveMaximum, maximumQoS, serverKeepAlive, maximumPacketSize },
    { receiveMaximum: 20, maximumQoS: 1, serverKeepAlive: 30, maximumPacketSize: 1000 },
  );
  assert.throws(() => decodeConnack(generate({ cmd: 'pingresp' }, 5), 5), /expected CONNACK/);
});

test('a CONNACK refuses the connection for its failure code or a lower maximum QoS', () => {
  const connack = (packet: Packet, v: ProtocolVersion) => decodeConnack(generate(packet, v), v);
  const refused5 = connack(
    {
      cmd: 'connack',
      reasonCode: 0x8a,
      sessionPresent: false,
      properties: { reasonString: 'go away' },
    },
    5,
  );
  assert.equal(connackRefusal(refused5, 5, 1), 'CONNACK refused: 0x8a banned (go away)');
  const refused4 = connack({ cmd: 'connack', returnCode: 4, sessionPresent: false }, 4);
  assert.equal(connackRefusal(refused4, 4, 1), 'CONNACK refused: 0x04 bad user name or password');
  const qos1 = connack(
    { cmd: 'connack', reasonCode: 0, sessionPresent: false, properties: { maximumQoS: 1 } },
    5,
  );
  assert.equal(connackRefusal(qos1, 5, 1), undefined);
  assert.equal(connackRefusal(qos1, 5, 2), 'the broker allows at most QoS 1, asked for 2');
  const plain = connack({ cmd: 'connack', returnCode: 0, sessionPresent: false }, 4);
  assert.equal(connackRefusal(plain, 4, 2), undefined);
});

test('DISCONNECT from the broker: reason code and, in MQTT 5, reason string', () => {
  assert.equal(
    describeDisconnect(generate({ cmd: 'disconnect' }, 4), 4),
    'the broker sent DISCONNECT: reason 0x00 success',
  );
  // MQTT 5 may leave out a zero reason code (§3.14.2.1).
  assert.equal(
    describeDisconnect(Buffer.from([0xe0, 0x00]), 5),
    'the broker sent DISCONNECT: reason 0x00 success',
  );
  const v5 = generate(
    {
      cmd: 'disconnect',
      reasonCode: 0x8e,
      properties: { reasonString: 'another client', serverReference: 'elsewhere' },
    },
    5,
  );
  assert.equal(
    describeDisconnect(v5, 5),
    'the broker sent DISCONNECT: reason 0x8e session taken over (another client)',
  );
});

// The bytes the hand-written encoders wrote before mqtt-packet took over: the wire is unchanged.
test('CONNECT, SUBSCRIBE, PINGREQ and DISCONNECT bytes', () => {
  const hex = (b: Readonly<Buffer>) => Buffer.from(b).toString('hex');
  const base = { clientId: 'abc', keepaliveS: 60, cleanStart: true } as const;
  assert.equal(
    hex(encodeConnect({ ...base, protocolVersion: 4 })),
    '100f00044d5154540402003c0003616263',
  );
  assert.equal(
    hex(encodeConnect({ ...base, protocolVersion: 5 })),
    '101000044d5154540502003c000003616263',
  );
  assert.equal(
    hex(encodeConnect({ ...base, protocolVersion: 5, receiveMaximum: 65535 })),
    '101300044d5154540502003c0321ffff0003616263',
  );
  assert.equal(hex(encodeSubscribe(1, 'a/#', 2, 4)), '820800010003612f2302');
  assert.equal(hex(encodeSubscribe(1, 'a/#', 2, 5)), '82090001000003612f2302');
  assert.equal(hex(PINGREQ_PACKET), 'c000');
  // MQTT 5 lets a zero reason code without properties be left out: the same 2 bytes as 3.1.1.
  assert.equal(hex(DISCONNECT_PACKET), 'e000');
});

/**
 * A scripted broker for one connection: `respond` gets each packet the client sends and
 * returns the packets to answer with.
 */
async function scriptedBroker(
  v: ProtocolVersion,
  respond: (p: Packet) => Packet[],
): Promise<{ port: number; received: Packet[]; close: () => void }> {
  const received: Packet[] = [];
  const { port, close } = await listenLocal((socket) => {
    const parser = mqttPacket.parser({ protocolVersion: v });
    parser.on('packet', (p) => {
      received.push(p);
      const out = respond(p);
      if (out.length) socket.write(Buffer.concat(out.map((o) => generate(o, v))));
    });
    socket.on('data', (c) => parser.parse(c));
  });
  return { port, received, close };
}

function connectTo(port: number, v: ProtocolVersion, qos: QoS, window = 10, keepaliveS = 60) {
  return RawMqttPublisher.connect({
    host: '127.0.0.1',
    port,
    protocolVersion: v,
    clientId: 'raw-test',
    keepaliveS,
    qos,
    window,
    connectTimeoutMs: 5_000,
  });
}

/** Resolves when `check` holds, polling; rejects after `ms`. */
async function until(check: () => boolean, ms = 5_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error('condition not reached in time');
    await new Promise((r) => setTimeout(r, 5));
  }
}

test('a refused CONNACK fails the connect with the reason named', async () => {
  const broker = await scriptedBroker(5, (p) =>
    p.cmd === 'connect' ? [{ cmd: 'connack', reasonCode: 0x87, sessionPresent: false }] : [],
  );
  try {
    await assert.rejects(connectTo(broker.port, 5, 1), /CONNACK refused: 0x87 not authorized/);
  } finally {
    broker.close();
  }
});

test('QoS 2: PUBREC is answered with PUBREL, PUBCOMP completes; packet ids are reused only then', async () => {
  const broker = await scriptedBroker(5, (p) => {
    if (p.cmd === 'connect') return [{ cmd: 'connack', reasonCode: 0, sessionPresent: false }];
    if (p.cmd === 'publish') return [{ cmd: 'pubrec', messageId: p.messageId! }];
    if (p.cmd === 'pubrel') return [{ cmd: 'pubcomp', messageId: p.messageId! }];
    if (p.cmd === 'disconnect') return [];
    throw new Error(`unexpected ${p.cmd}`);
  });
  try {
    // receiveMaximum is absent: the window stays as asked.
    const client = await connectTo(broker.port, 5, 2, 3);
    let completed = 0;
    client.onComplete = (n) => (completed += n);
    const topic = encodeTopic('t/0');
    const payload = Buffer.from('hello');
    for (let round = 0; round < 4; round++) {
      assert.equal(client.room(), 3);
      for (let i = 0; i < 3; i++) client.publish(topic, payload);
      assert.equal(client.room(), 0, 'the window is full until completions');
      client.flush();
      await until(() => completed === (round + 1) * 3);
    }
    client.disconnect();
    await until(() => broker.received.some((p) => p.cmd === 'disconnect'));
    const ids = broker.received.flatMap((p) => (p.cmd === 'publish' ? [p.messageId] : []));
    assert.deepEqual(ids, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
    assert.equal(broker.received.filter((p) => p.cmd === 'pubrel').length, 12);
    assert.equal(client.inflight, 0);
  } finally {
    broker.close();
  }
});

test('PUBRELs queued when the output slab is exactly full go out intact in the next one', async () => {
  const broker = await scriptedBroker(4, (p) => {
    if (p.cmd === 'connect') return [{ cmd: 'connack', returnCode: 0, sessionPresent: false }];
    if (p.cmd === 'publish') return [{ cmd: 'pubrec', messageId: p.messageId! }];
    if (p.cmd === 'pubrel') return [{ cmd: 'pubcomp', messageId: p.messageId! }];
    return [];
  });
  try {
    const topic = encodeTopic('t');
    // 1024-byte packets: 256 of them fill the slab to its last byte.
    const payload = Buffer.alloc(1016, 1);
    assert.equal(publishSize(topic, 2, 4, payload.length), 1024);
    const n = SLAB_BYTES / 1024;
    const client = await connectTo(broker.port, 4, 2, n);
    let completed = 0;
    client.onComplete = (c) => (completed += c);
    for (let i = 0; i < n; i++) client.publish(topic, payload);
    client.flush();
    await until(() => completed === n);
    const rels = broker.received.flatMap((p) => (p.cmd === 'pubrel' ? [p.messageId] : []));
    assert.deepEqual(
      rels,
      Array.from({ length: n }, (_, i) => i + 1),
    );
    assert.ok(
      broker.received.every((p) => p.cmd !== 'publish' || (p.payload as Buffer).equals(payload)),
    );
    client.disconnect();
  } finally {
    broker.close();
  }
});

test('MQTT 5: a failure reason code in PUBACK ends the connection with an error naming it', async () => {
  const broker = await scriptedBroker(5, (p) => {
    if (p.cmd === 'connect') {
      return [
        {
          cmd: 'connack',
          reasonCode: 0,
          sessionPresent: false,
          properties: { receiveMaximum: 2 },
        },
      ];
    }
    if (p.cmd === 'publish') {
      return [
        p.messageId === 1
          ? { cmd: 'puback', messageId: 1, reasonCode: 0x10 }
          : {
              cmd: 'puback',
              messageId: p.messageId!,
              reasonCode: 0x97,
              properties: { reasonString: 'over quota' },
            },
      ];
    }
    return [];
  });
  try {
    const client = await connectTo(broker.port, 5, 1, 1000);
    assert.equal(client.window, 2, "capped by the broker's receive maximum");
    let completed = 0;
    let error: string | undefined;
    client.onComplete = (n) => (completed += n);
    client.onError = (m) => (error = m);
    client.publish(encodeTopic('t/0'), Buffer.from('a'));
    client.publish(encodeTopic('t/0'), Buffer.from('b'));
    client.flush();
    await until(() => error !== undefined);
    assert.equal(completed, 1, '0x10 (no matching subscribers) is a success');
    assert.match(error!, /PUBACK for packet id 2: reason 0x97 quota exceeded \(over quota\)/);
    assert.equal(client.room(), 0);
  } finally {
    broker.close();
  }
});

test('QoS 0 completes once written; a closed connection is an error', async () => {
  const broker = await scriptedBroker(4, (p) =>
    p.cmd === 'connect' ? [{ cmd: 'connack', returnCode: 0, sessionPresent: false }] : [],
  );
  try {
    const client = await connectTo(broker.port, 4, 0, 100);
    let completed = 0;
    let error: string | undefined;
    client.onComplete = (n) => (completed += n);
    client.onError = (m) => (error = m);
    for (let i = 0; i < 100; i++) client.publish(encodeTopic('t/0'), Buffer.alloc(100));
    client.flush();
    await until(() => completed === 100);
    await until(() => broker.received.filter((p) => p.cmd === 'publish').length === 100);
    broker.close();
    await until(() => error !== undefined);
    assert.match(error!, /closed by the broker/);
  } finally {
    broker.close();
  }
});

test('keepalive: PINGREQ when idle, and an error when PINGRESP does not come', async () => {
  let answerPings = true;
  const broker = await scriptedBroker(4, (p) => {
    if (p.cmd === 'connect') return [{ cmd: 'connack', returnCode: 0, sessionPresent: false }];
    if (p.cmd === 'pingreq' && answerPings) return [{ cmd: 'pingresp' }];
    return [];
  });
  try {
    const client = await connectTo(broker.port, 4, 1, 10, 1);
    let error: string | undefined;
    client.onError = (m) => (error = m);
    const pings = () => broker.received.filter((p) => p.cmd === 'pingreq').length;
    await until(() => pings() >= 2, 4_000);
    assert.equal(error, undefined, 'answered pings keep the connection');
    answerPings = false;
    await until(() => error !== undefined, 4_000);
    assert.match(error!, /no PINGRESP within 1 s/);
  } finally {
    broker.close();
  }
});

test("the broker's maximum QoS below the asked one fails the connect", async () => {
  const broker = await scriptedBroker(5, (p) =>
    p.cmd === 'connect'
      ? [{ cmd: 'connack', reasonCode: 0, sessionPresent: false, properties: { maximumQoS: 0 } }]
      : [],
  );
  try {
    await assert.rejects(connectTo(broker.port, 5, 1), /allows at most QoS 0, asked for 1/);
  } finally {
    broker.close();
  }
});

test('a malformed CONNACK fails the connect with what is wrong', async () => {
  // Reserved CONNACK flag bits set (§3.2.2.1).
  const { port, close } = await listenLocal((socket) => {
    socket.once('data', () => socket.write(Buffer.from([0x20, 0x02, 0x02, 0x00])));
  });
  try {
    await assert.rejects(
      connectTo(port, 4, 1),
      /bad packet from the broker: Invalid connack flags/,
    );
  } finally {
    close();
  }
});

test('a DISCONNECT from the broker ends the connection with its reason', async () => {
  const broker = await scriptedBroker(5, (p) => {
    if (p.cmd === 'connect') return [{ cmd: 'connack', reasonCode: 0, sessionPresent: false }];
    if (p.cmd === 'publish') {
      return [{ cmd: 'disconnect', reasonCode: 0x8e, properties: { reasonString: 'taken over' } }];
    }
    return [];
  });
  try {
    const client = await connectTo(broker.port, 5, 1);
    let error: string | undefined;
    client.onError = (m) => (error = m);
    client.publish(encodeTopic('t/0'), Buffer.from('a'));
    client.flush();
    await until(() => error !== undefined);
    assert.equal(error, 'the broker sent DISCONNECT: reason 0x8e session taken over (taken over)');
  } finally {
    broker.close();
  }
});
