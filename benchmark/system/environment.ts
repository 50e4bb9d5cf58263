/** CPU, memory, kernel, versions of node, the brokers, librdkafka and kcat, the git commit. */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { librdkafkaVersion } from 'node-rdkafka';
import type { Environment } from '../types';

function tryRun(cmd: string, args: string[], cwd?: string): string {
  try {
    return execFileSync(cmd, args, {
      encoding: 'utf8',
      timeout: 10_000,
      stdio: ['ignore', 'pipe', 'pipe'],
      ...(cwd ? { cwd } : {}),
    });
  } catch (err) {
    // mosquitto -h exits 3 after printing its version.
    const e = err as { stdout?: string; stderr?: string };
    return `${e.stdout ?? ''}${e.stderr ?? ''}`;
  }
}

function pkgVersion(repo: string, name: string): string {
  try {
    const file = path.join(repo, 'node_modules', name, 'package.json');
    return (JSON.parse(readFileSync(file, 'utf8')) as { version: string }).version;
  } catch {
    return 'unknown';
  }
}

export function collectEnvironment(repo: string, kafkaVersion: string): Environment {
  const cpuinfo = readFileSync('/proc/cpuinfo', 'utf8');
  const model = /model name\s*:\s*(.*)/.exec(cpuinfo)?.[1]?.trim() ?? os.cpus()[0]?.model ?? '?';
  const mosq = /mosquitto version (\S+)/.exec(
    tryRun(process.env['PATH']?.includes('/usr/sbin') ? 'mosquitto' : '/usr/sbin/mosquitto', [
      '-h',
    ]),
  );
  const kcat = /Version (\S+)/.exec(tryRun('kcat', ['-V']));
  return {
    cpuModel: model,
    cores: os.cpus().length,
    memoryGb: Math.round(os.totalmem() / 1024 ** 3),
    kernel: os.release(),
    node: process.version,
    mosquitto: mosq?.[1] ?? 'unknown',
    kafka: kafkaVersion,
    // Loading the addon creates no client, so nothing native is left to garbage-collect.
    librdkafka: librdkafkaVersion,
    kcat: kcat?.[1] ?? 'unknown',
    mqttJs: pkgVersion(repo, 'mqtt'),
    piscina: pkgVersion(repo, 'piscina'),
    gitCommit: tryRun('git', ['rev-parse', 'HEAD'], repo).trim() || 'unknown',
    gitDirty: tryRun('git', ['status', '--porcelain'], repo)
      .split('\n')
      .filter((l) => l.trim().length > 0).length,
    loadAvgAtStart: Math.round(os.loadavg()[0]! * 100) / 100,
  };
}
