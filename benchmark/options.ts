/**
 * Command-line option parsers shared by the entry points (cli.ts, native-bench.ts,
 * run-matrix.ts, compare.ts), so that an option spelled the same way means the same in all three.
 */
import { InvalidArgumentError, Option } from 'commander';
import { PROCESS_LAYOUTS, PUBLISHER_CLIENTS } from './types';
import type { ProtocolVersion } from './types';

/** One integer in [min, max]; `_` may group digits (1_000_000). */
export function int(min: number, max = Number.MAX_SAFE_INTEGER) {
  return (v: string): number => {
    const n = Number(v.replace(/_/g, ''));
    if (!Number.isInteger(n) || n < min || n > max) {
      throw new InvalidArgumentError(`expected an integer from ${min} to ${max}`);
    }
    return n;
  };
}

/** Comma-separated integers in [min, max]; the empty string is the empty list. */
export function intList(min: number, max: number) {
  return (v: string): number[] =>
    v === ''
      ? []
      : v.split(',').map((s) => {
          const n = Number(s.trim().replace(/_/g, ''));
          if (!Number.isInteger(n) || n < min || n > max) {
            throw new InvalidArgumentError(
              `expected integers from ${min} to ${max}, comma-separated`,
            );
          }
          return n;
        });
}

/** `a=b` → ['a', 'b'] (the value may hold `=`); an empty key or no `=` is refused. */
export function splitKeyValue(s: string): [string, string] {
  const i = s.indexOf('=');
  if (i <= 0) throw new InvalidArgumentError(`'${s}' is not key=value`);
  return [s.slice(0, i), s.slice(i + 1)];
}

/** `a=1,b=x` → { a: '1', b: 'x' }; a pair without `=` is a usage error. */
export function keyValues(v: string): Record<string, string> {
  return Object.fromEntries(
    v
      .split(',')
      .filter((p) => p !== '')
      .map(splitKeyValue),
  );
}

export function protocolOf(v: string): ProtocolVersion {
  if (v === '5') return 5;
  if (v === '3.1.1' || v === '4') return 4;
  throw new InvalidArgumentError("expected 5 or '3.1.1'");
}

/** `host:port` of the option named `what`. */
export function hostPort(v: string, what: string): { host: string; port: number } {
  const i = v.lastIndexOf(':');
  const port = Number(v.slice(i + 1));
  if (i <= 0 || !Number.isInteger(port)) throw new InvalidArgumentError(`${what}: host:port`);
  return { host: v.slice(0, i), port };
}

/** `--publisher`: the load generator's MQTT client, the same choice in every entry point. */
export function publisherOption(): Option {
  return new Option('--publisher <client>', 'MQTT client of the load generator')
    .choices(PUBLISHER_CLIENTS)
    .default('raw');
}

/**
 * `--processes`: the forwarder's top-level `processes` (ingest processes under a supervisor);
 * its CPU and RSS are then those of the whole process tree.
 */
export function processesOption(what = "the forwarder config's top-level `processes`"): Option {
  return new Option('--processes <n>', what).argParser(int(1, 64)).default(1);
}

/** `--process-layout`: how the load's mapping is spread over the processes (types.ts). */
export function processLayoutOption(): Option {
  return new Option(
    '--process-layout <layout>',
    'with --processes > 1: split (one mapping per MQTT topic, round robin) or share ($share/ subscription in every process)',
  )
    .choices(PROCESS_LAYOUTS)
    .default('split');
}

/** `--kafka-config k=v,...` (repeatable): librdkafka properties for kafka.config. */
export function kafkaConfigOption(what: string): Option {
  return new Option('--kafka-config <k=v,...>', what)
    .argParser((v: string, acc: Record<string, string>) => ({ ...acc, ...keyValues(v) }))
    .default({});
}
