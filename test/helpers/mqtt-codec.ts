/**
 * mqtt-packet (mqtt.js's own codec) as the independent check of the benchmark's hand-written MQTT
 * bytes, both ways: what our encoders write must decode, and what it generates our parsers must
 * read. `decodeAll` is the benchmark's own mqtt-packet call, the one it decodes its connection's
 * control packets with.
 */
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import mqttPacket from 'mqtt-packet';
import type { Packet } from 'mqtt-packet';
import type { ProtocolVersion } from '../../benchmark/types';

export { decodeAll } from '../../benchmark/load/raw-mqtt';

export function generate(packet: Packet, protocolVersion: ProtocolVersion): Buffer {
  return mqttPacket.generate(packet, { protocolVersion });
}

/**
 * A TCP server on 127.0.0.1 for a scripted broker: `onSocket` speaks for it on each connection.
 * `close` ends every connection it accepted, so a test never waits on a lingering socket.
 */
export async function listenLocal(
  onSocket: (socket: net.Socket) => void,
): Promise<{ port: number; close: () => void }> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('error', () => {});
    onSocket(socket);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    close: () => {
      for (const s of sockets) s.destroy();
      server.close();
    },
  };
}
