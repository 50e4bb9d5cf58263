import { readFileSync } from 'node:fs';
import path from 'node:path';
import { Command } from 'commander';
import { loadConfig, resolveConfigPath } from '../config/load';
import type { Config } from '../config/schema';
import { renderConfigJsonSchema } from '../config/docs';
import { redactConfig } from '../config/kafka';
import { ERROR_CODES, ForwarderError } from '../errors';
import { Forwarder, STOP_BUDGET_MS } from '../forwarder';
import type { StopOutcome } from '../forwarder';
import { serveSupervisor } from '../supervisor/ipc';
import { ingestConfig, ingestIdentity, owningProcesses, processCount } from '../supervisor/plan';
import { orphanCandidates, probeSessions } from '../supervisor/sessions';
import { Supervisor } from '../supervisor/supervisor';
import { hardExit } from './hard-exit';
import { ConfigReloader, configErrorText } from './reload';
import { createLogger } from '../observability/logger';

const pkg = JSON.parse(
  readFileSync(path.join(__dirname, '..', '..', '..', 'package.json'), 'utf8'),
) as {
  version: string;
};

/**
 * Exit codes: 0 clean stop, 1 runtime failure, 2 bad configuration, 3 stop forced at the hard
 * deadline (the Kafka producers had not closed; see STOP_GRACE_MS).
 */
const EXIT_CONFIG = 2;
const EXIT_FORCED = 3;
/**
 * A stop ends within shutdown_timeout_ms + this, whatever the Kafka binding does: the forwarder
 * spends at most STOP_BUDGET_MS past the drain; this adds one second for a loaded machine and
 * stays half a second inside the documented bound of shutdown_timeout_ms + 5 s.
 */
const STOP_GRACE_MS = STOP_BUDGET_MS + 1_000;

function readConfig(file: string, load: () => Config): Config {
  try {
    return load();
  } catch (err) {
    if (err instanceof ForwarderError) {
      // A config problem is the user's to fix: the message names it; a stack trace would not help.
      process.stderr.write(`${configErrorText(file, err)}\n`);
      process.exit(EXIT_CONFIG);
    }
    throw err;
  }
}

async function run(opts: { config?: string }): Promise<void> {
  const file = resolveConfigPath(opts.config);
  // SIGHUP runs exactly this load again: same path, same environment, same checks.
  const loadFile = (): Config => loadConfig(file, process.env, { checkFiles: true });
  const fileCfg = readConfig(file, loadFile);
  const ingest = ingestIdentity(process.env);
  if (ingest === undefined) {
    const count = processCount(fileCfg);
    if (count > 1) {
      await runSupervisor(file, fileCfg, count, loadFile);
      return;
    }
  }
  const { index, count } = ingest ?? { index: 0, count: 1 };
  // Each process runs its own share of the mappings, computed from the file as the supervisor
  // computes it; a reload re-plans the same way.
  const load = (): Config => ingestConfig(loadFile(), count, index);
  const cfg = ingestConfig(fileCfg, count, index);
  // librdkafka's connect, flush and metadata calls each hold a libuv pool thread shared by all
  // workers (default 4). It must be sized before the first asynchronous call creates the pool.
  process.env['UV_THREADPOOL_SIZE'] ??= String(Math.max(4, cfg.dispatch.workers * 2 + 2));
  const log = createLogger(cfg.log_level, {
    name: 'forwarder',
    ...(ingest !== undefined && { process: index }),
  });
  const forwarder = new Forwarder(cfg, log);
  let report: (outcome: StopOutcome) => Promise<void> = () => Promise.resolve();
  let signals = 0;
  const onSignal = (signal: NodeJS.Signals | 'supervisor gone'): void => {
    if (++signals > 1) {
      log.warn({ signal }, 'already stopping; shutdown is bounded by shutdown_timeout_ms');
      return;
    }
    log.info({ signal }, 'signal received');
    // The MQTT side ends within the budget by its own timers; what can outlast it is a native
    // call of a Kafka client, which no JS code can cancel. Every ack that was going to be
    // written has been by then, and unacknowledged messages are redelivered by the broker.
    const deadline = cfg.shutdown_timeout_ms + STOP_GRACE_MS;
    setTimeout(() => {
      log.error(
        { code: ERROR_CODES.shutdownForced, exitCode: EXIT_FORCED },
        `stop did not complete within ${deadline} ms (shutdown_timeout_ms + ${STOP_GRACE_MS} ms): Kafka producers still closing; exiting without waiting for them. Every acknowledged message was confirmed by Kafka; unacknowledged ones are redelivered by the broker`,
      );
      log.flush();
      hardExit(EXIT_FORCED);
    }, deadline).unref();
    forwarder
      .stop()
      .then(async (outcome) => {
        if (!outcome.drained) log.warn('stopped before every message was confirmed');
        log.flush();
        // The supervisor's exit code says whether every process drained; it learns it here.
        await Promise.race([report(outcome), new Promise((r) => setTimeout(r, 500).unref())]);
        return outcome;
      })
      .then(
        ({ producers }) => {
          // A pending connect attempt holds no record of ours, and its thread must not be ended
          // under it (process.exit would): leave without teardown.
          if (producers === 'abandoned') hardExit(0);
          process.exitCode = 0;
          // Everything is closed; nothing should keep the loop alive, but never hang on exit.
          setTimeout(() => hardExit(0), 1_000).unref();
        },
        (err: unknown) => {
          log.fatal({ code: ERROR_CODES.shutdownFailed, err }, 'shutdown failed');
          log.flush();
          // Where it failed is unknown, so a producer call may be pending: no teardown.
          hardExit(1);
        },
      );
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  // An ingest process never outlives its supervisor: killed, it leaves the channel closed.
  if (ingest !== undefined)
    report = serveSupervisor(forwarder, index, () => onSignal('supervisor gone'));
  const reloader = new ConfigReloader(file, load, forwarder, log);
  process.on('SIGHUP', () => {
    if (signals > 0) {
      log.info({ signal: 'SIGHUP' }, 'stopping; config reload ignored');
      return;
    }
    log.info({ signal: 'SIGHUP', file }, 'reloading config');
    void reloader.request();
  });
  try {
    await forwarder.start();
  } catch (err) {
    // E.g. the HTTP port is taken: fail fast and visibly rather than run without probes.
    log.fatal(
      { code: ERROR_CODES.startFailed, err },
      `forwarder failed to start: ${err instanceof Error ? err.message : String(err)}`,
    );
    log.flush();
    process.exit(1);
  }
}

/** `processes` > 1: this process only supervises; see supervisor/supervisor.ts. */
async function runSupervisor(
  file: string,
  cfg: Config,
  count: number,
  load: () => Config,
): Promise<void> {
  const log = createLogger(cfg.log_level, { name: 'supervisor' });
  const supervisor = new Supervisor(
    cfg,
    // Just past the ingest processes' own hard deadline (they _exit by themselves then), and
    // within the documented bound of shutdown_timeout_ms + 5 s.
    { configFile: file, count, stopDeadlineMs: cfg.shutdown_timeout_ms + STOP_GRACE_MS + 400 },
    log,
  );
  let signals = 0;
  const onSignal = (signal: NodeJS.Signals): void => {
    if (++signals > 1) {
      log.warn({ signal }, 'already stopping; shutdown is bounded by shutdown_timeout_ms');
      return;
    }
    log.info({ signal }, 'signal received');
    supervisor.stop(signal).then(
      (code) => {
        log.flush();
        process.exit(code);
      },
      (err: unknown) => {
        log.fatal({ code: ERROR_CODES.shutdownFailed, err }, 'shutdown failed');
        log.flush();
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  const reloader = new ConfigReloader(file, load, supervisor, log);
  process.on('SIGHUP', () => {
    if (signals > 0) return;
    log.info({ signal: 'SIGHUP', file }, 'reloading config');
    void reloader.request();
  });
  try {
    await supervisor.start();
  } catch (err) {
    log.fatal(
      { code: ERROR_CODES.startFailed, err },
      `supervisor failed to start: ${err instanceof Error ? err.message : String(err)}`,
    );
    log.flush();
    process.exit(1);
  }
}

export function main(argv: readonly string[]): void {
  const program = new Command();
  program
    .name('forwarder')
    .description('Forwards MQTT messages to Apache Kafka by topic mappings, at least once.')
    .version(pkg.version)
    .option('-c, --config <file>', 'config file (default: $CONFIG_FILE, else ./config.yaml)')
    .action((opts: { config?: string }) => run(opts));
  program
    .command('run')
    .description('run the forwarder (the default command)')
    .option('-c, --config <file>', 'config file (default: $CONFIG_FILE, else ./config.yaml)')
    .action((opts: { config?: string }) =>
      run({ config: opts.config ?? program.opts<{ config?: string }>().config }),
    );
  program
    .command('check-config')
    .description('validate the config file without connecting to any broker')
    .option('-c, --config <file>', 'config file (default: $CONFIG_FILE, else ./config.yaml)')
    .option('--print', 'print the effective config (defaults filled in, secrets redacted) as JSON')
    .option(
      '--skip-files',
      'do not check that the files it names (certificates, keys) exist here: for a config checked away from where it runs',
    )
    .action((opts: { config?: string; print?: boolean; skipFiles?: boolean }) => {
      const flag = opts.config ?? program.opts<{ config?: string }>().config;
      const file = resolveConfigPath(flag);
      const checkFiles = opts.skipFiles !== true;
      const cfg = readConfig(file, () => loadConfig(file, process.env, { checkFiles }));
      if (opts.print) {
        process.stdout.write(`${JSON.stringify(redactConfig(cfg), null, 2)}\n`);
        return;
      }
      const n = cfg.forwarding.length;
      process.stdout.write(`${file}: ok (${n} mapping${n === 1 ? '' : 's'})\n`);
    });
  program
    .command('check-sessions')
    .description(
      'connect with each client id an earlier process count may have left a persistent session under (<client_id>-<i>, or the bare id) and list those the broker still holds; exit 1 when it holds any',
    )
    .option('-c, --config <file>', 'config file (default: $CONFIG_FILE, else ./config.yaml)')
    .action(async (opts: { config?: string }) => {
      const file = resolveConfigPath(opts.config ?? program.opts<{ config?: string }>().config);
      const cfg = readConfig(file, () => loadConfig(file, process.env, { checkFiles: true }));
      const count = processCount(cfg);
      // A single process connects with the bare id: no `<client_id>-<i>` is in use then.
      const inUse = new Set(count === 1 ? [] : owningProcesses(cfg.forwarding, count));
      const candidates = orphanCandidates(cfg.mqtt.client_id, count, inUse);
      const log = createLogger('warn', { name: 'check-sessions' });
      const results = await probeSessions(cfg.mqtt, candidates, log);
      const found = results.filter((r) => r.present);
      for (const r of results) {
        if (r.present) process.stdout.write(`${r.clientId}: session held by the broker\n`);
        else if (r.error !== undefined)
          process.stdout.write(`${r.clientId}: not checked (${r.error})\n`);
      }
      process.stdout.write(
        `${candidates.length} client ids checked, ${found.length} orphaned session${found.length === 1 ? '' : 's'} (processes: ${count})\n`,
      );
      process.exitCode = found.length > 0 ? 1 : 0;
    });
  program
    .command('schema')
    .description('print the JSON Schema of the config file')
    .action(() => {
      process.stdout.write(renderConfigJsonSchema());
    });
  program.parseAsync([...argv]).catch((err: unknown) => {
    process.stderr.write(`forwarder: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  });
}
