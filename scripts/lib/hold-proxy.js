'use strict';
/* global require, process, console, setTimeout, clearTimeout */
/* eslint-disable @typescript-eslint/no-require-imports */
/**
 * A TCP proxy on 127.0.0.1 that can hold (not forward) bytes in both directions while keeping
 * every connection open. Put between Kafka's broker and its KRaft controller listener, a hold
 * starves the broker's heartbeats only: the controller fences the broker while the broker keeps
 * serving clients, as a starved JVM does under load (SIGSTOP freezes everything instead).
 *
 *   node hold-proxy.js <listenPort> <targetPort> [maxLifetimeSec=5400] [maxHoldMs=60000]
 *   SIGUSR1: hold; SIGUSR2: release (also after maxHoldMs). Exits after maxLifetimeSec.
 */
const net = require('node:net');

const [listenPort, targetPort] = process.argv.slice(2, 4).map(Number);
const maxLifetimeSec = Number(process.argv[4] ?? 5400);
const maxHoldMs = Number(process.argv[5] ?? 60000);
if (!listenPort || !targetPort) {
  console.error('usage: hold-proxy.js <listenPort> <targetPort> [maxLifetimeSec] [maxHoldMs]');
  process.exit(2);
}

if (process.env.PIDFILE) require('node:fs').writeFileSync(process.env.PIDFILE, String(process.pid));
const t0 = Date.now();
const log = (msg) => console.log(`${new Date().toISOString()} +${Date.now() - t0}ms ${msg}`);

let held = false;
let holdTimer;
/** Pending writes while held: [socket, chunk]. */
const queued = [];
let conns = 0;

function forward(to, chunk) {
  if (held) queued.push([to, chunk]);
  else if (!to.destroyed) to.write(chunk);
}

function release(why) {
  if (!held) return;
  held = false;
  clearTimeout(holdTimer);
  const n = queued.length;
  for (const [to, chunk] of queued.splice(0)) if (!to.destroyed) to.write(chunk);
  log(`release (${why}): flushed ${n} chunks`);
}

process.on('SIGUSR1', () => {
  if (held) return;
  held = true;
  log('hold');
  holdTimer = setTimeout(() => release('max hold'), maxHoldMs);
});
process.on('SIGUSR2', () => release('signal'));
process.on('SIGTERM', () => {
  log('SIGTERM');
  process.exit(0);
});

const server = net.createServer((down) => {
  const id = ++conns;
  const up = net.connect({ host: '127.0.0.1', port: targetPort });
  log(`conn ${id} open`);
  down.on('data', (c) => forward(up, c));
  up.on('data', (c) => forward(down, c));
  const close = (why) => {
    if (down.destroyed && up.destroyed) return;
    log(`conn ${id} close: ${why}`);
    down.destroy();
    up.destroy();
  };
  down.on('close', () => close('client side'));
  up.on('close', () => close('server side'));
  down.on('error', () => undefined);
  up.on('error', () => undefined);
});
server.listen(listenPort, '127.0.0.1', () => log(`listening ${listenPort} -> ${targetPort}`));
setTimeout(() => {
  log('max lifetime');
  process.exit(0);
}, maxLifetimeSec * 1000).unref();
