/**
 * The process's last exit, for when an orderly one is impossible or pointless: `_exit(2)`
 * through a ten-line addon (native/hard-exit). process.exit() ends worker threads and joins
 * libuv's thread pool, which under a pending Kafka client call crashes or waits forever; _exit
 * runs no teardown at all and the kernel closes the sockets. Callers use it only once the MQTT
 * side is finished (DESIGN.md, "Stopping").
 */
import path from 'node:path';

interface HardExitAddon {
  hardExit(code: number): never;
}

const ADDON = path.join(
  __dirname,
  '..',
  '..',
  '..',
  'native',
  'hard-exit',
  'build',
  'Release',
  'hard_exit.node',
);

// Loaded at start, not at the moment of need: a missing build must fail the start, not the stop.
// eslint-disable-next-line @typescript-eslint/no-require-imports
const addon = require(ADDON) as HardExitAddon;

export function hardExit(code: number): never {
  return addon.hardExit(code);
}
