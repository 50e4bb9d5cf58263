/**
 * The metrics as a user's monitoring sees them: a real Prometheus (the Debian package's binary,
 * its own config, data folder and port) scrapes real forwarders every second and loads the
 * shipped alert rules (docs/prometheus/forwarder-alerts.yml). Under load, every query of the
 * shipped Grafana dashboard is evaluated through Prometheus's HTTP API and must return the
 * series its panel draws; every rule must load and evaluate without error; and one alert is
 * induced for real: a forwarder pointed at a closed Kafka port raises MkfKafkaProducerDown.
 * promtool checks the rules and runs their unit tests (docs/prometheus/forwarder-alerts.test.yml).
 */
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { parse, stringify } from 'yaml';
import { REPO_ROOT, uniqueName } from '../helpers/env';
import { testConfig, writeConfig } from '../helpers/forwarder';
import type { ForwarderProcess, MappingSpec } from '../helpers/forwarder';
import { forwarderPool, ready, sleep, until } from '../helpers/kit';
import type { UntilOptions } from '../helpers/kit';
import { publishMany } from '../helpers/mqtt';
import { closedPort } from '../helpers/stack';

const RULES = path.join(REPO_ROOT, 'docs', 'prometheus', 'forwarder-alerts.yml');
const RULE_TESTS = path.join(REPO_ROOT, 'docs', 'prometheus', 'forwarder-alerts.test.yml');
const DASHBOARD = path.join(REPO_ROOT, 'docs', 'grafana', 'forwarder-dashboard.json');
/** The job name the shipped MkfForwarderDown rule matches. */
const JOB = 'mqtt-kafka-forwarder';
/** A second job: the forwarder whose Kafka is unreachable, kept out of the dashboard's $job. */
const DOWN_JOB = 'mkf-kafka-down';
const LOAD = 3000;
const REFUSED = 5;
/** Our own payload limit refuses these records without touching Kafka's topic config. */
const PAYLOAD_LIMIT = 2000;
const BIG = 'B'.repeat(5000);

function findBinary(name: string): string | undefined {
  for (const dir of [...(process.env['PATH'] ?? '').split(path.delimiter), '/usr/bin']) {
    const file = path.join(dir, name);
    if (dir && existsSync(file)) return file;
  }
  return undefined;
}

const PROMETHEUS = findBinary('prometheus');
const PROMTOOL = findBinary('promtool');
const SKIP =
  PROMETHEUS && PROMTOOL
    ? false
    : 'prometheus or promtool not installed (Debian package "prometheus"; see scripts/setup)';

function run(cmd: string, args: string[], cwd: string): Promise<{ code: number; out: string }> {
  return new Promise((resolve) => {
    execFile(cmd, args, { cwd, timeout: 20_000 }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
      resolve({ code, out: `${stdout}${stderr}` });
    });
  });
}

/** Prometheus answers with errors while it starts: its waits try again through them. */
const patiently = (timeoutMs: number): UntilOptions => ({ timeoutMs, retryErrors: true });

interface Series {
  metric: Record<string, string>;
  value: [number, string];
}

interface RuleGroup {
  name: string;
  file: string;
  rules: {
    name: string;
    type: string;
    state?: string;
    health: string;
    lastError?: string;
    alerts?: { labels: Record<string, string>; state: string }[];
  }[];
}

/** A Prometheus of this test's own: temp config and data folder, a port of its own. */
class Prometheus {
  private child: ChildProcess | undefined;
  private readonly output: string[] = [];
  readonly dir = mkdtempSync(path.join(os.tmpdir(), 'mkf-prom-'));
  port = 0;

  async start(config: object): Promise<void> {
    const configFile = path.join(this.dir, 'prometheus.yml');
    writeFileSync(configFile, stringify(config));
    this.port = await closedPort();
    this.child = spawn(
      PROMETHEUS!,
      [
        `--config.file=${configFile}`,
        `--storage.tsdb.path=${path.join(this.dir, 'data')}`,
        `--web.listen-address=127.0.0.1:${this.port}`,
        '--log.level=warn',
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    for (const s of [this.child.stdout!, this.child.stderr!])
      s.on('data', (c: Buffer) => this.output.push(c.toString()));
    await until(
      'prometheus ready',
      async () => {
        if (this.child!.exitCode !== null)
          throw new Error(`prometheus exited: ${this.output.join('')}`);
        return (await fetch(`http://127.0.0.1:${this.port}/-/ready`)).ok ? true : undefined;
      },
      patiently(15_000),
    );
  }

  async api<T>(pathAndQuery: string): Promise<T> {
    const res = await fetch(`http://127.0.0.1:${this.port}/api/v1/${pathAndQuery}`);
    const body = (await res.json()) as { status: string; data: T; error?: string };
    if (body.status !== 'success') throw new Error(`${pathAndQuery}: ${body.error}`);
    return body.data;
  }

  async query(expr: string): Promise<Series[]> {
    const data = await this.api<{ resultType: string; result: Series[] }>(
      `query?query=${encodeURIComponent(expr)}`,
    );
    assert.equal(data.resultType, 'vector', expr);
    return data.result;
  }

  async rules(): Promise<RuleGroup[]> {
    return (await this.api<{ groups: RuleGroup[] }>('rules')).groups;
  }

  /** SIGTERM, SIGKILL after 5 s; removes the data folder. */
  async stop(): Promise<void> {
    const child = this.child;
    if (child && child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
      await exited;
      clearTimeout(timer);
    }
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** Grafana's variables as a dashboard user with job `job` selected would have them. */
function substitute(expr: string, job: string): string {
  const values: Record<string, string> = {
    __rate_interval: '1m',
    __interval: '15s',
    __range: '5m',
    job,
  };
  return expr.replace(
    /\$\{(\w+)(?::\w+)?\}|\[\[(\w+)\]\]|\$(\w+)/g,
    (_m, a?: string, b?: string, c?: string) => values[(a ?? b ?? c)!] ?? '.+',
  );
}

interface Target {
  panel: string;
  type: string;
  refId: string;
  expr: string;
  legendFormat?: string;
}

function dashboardTargets(): Target[] {
  type Panel = {
    title: string;
    type: string;
    targets?: { refId: string; expr?: string; legendFormat?: string }[];
    panels?: Panel[];
  };
  const dashboard = JSON.parse(readFileSync(DASHBOARD, 'utf8')) as { panels: Panel[] };
  const out: Target[] = [];
  const walk = (panels: Panel[]): void => {
    for (const p of panels) {
      for (const t of p.targets ?? [])
        if (t.expr) out.push({ ...t, panel: p.title, type: p.type, expr: t.expr });
      walk(p.panels ?? []);
    }
  };
  walk(dashboard.panels);
  return out;
}

describe('Prometheus scraping real forwarders', { skip: SKIP, timeout: 90_000 }, () => {
  const pool = forwarderPool();
  const prometheus = new Prometheus();
  const base = uniqueName('prom');
  const mappings: MappingSpec[] = [
    { name: 'telemetry', mqtt: { topic: `${base}/#`, qos: 1 }, kafka: { topic: base } },
    {
      name: 'refused-skip',
      mqtt: { topic: `${base}-skip/#`, qos: 1 },
      kafka: { topic: `${base}-skip` },
      on_error: 'skip',
    } as MappingSpec,
    {
      name: 'refused-dlq',
      mqtt: { topic: `${base}-dlq/#`, qos: 1 },
      kafka: { topic: `${base}-dlq` },
      on_error: 'dead_letter',
      dead_letter_topic: `${base}-dead`,
    } as MappingSpec,
  ];
  let fwd: ForwarderProcess;
  let down: ForwarderProcess;
  let target = '';
  let downTarget = '';

  // Stops by PID what this file started, whatever failed: the pool SIGKILLs forwarders left.
  after(async () => {
    await Promise.all([
      prometheus.stop(),
      ...[fwd, down].filter(Boolean).map((f) => f.stop('SIGTERM', 10_000)),
    ]);
  });

  test('promtool: the rules are valid and their unit tests pass', async () => {
    const check = await run(PROMTOOL!, ['check', 'rules', RULES], REPO_ROOT);
    assert.equal(check.code, 0, check.out);
    assert.match(check.out, /SUCCESS: 7 rules found/);
    const unit = await run(
      PROMTOOL!,
      ['test', 'rules', path.basename(RULE_TESTS)],
      path.dirname(RULES),
    );
    assert.equal(unit.code, 0, unit.out);
  });

  describe('under load', () => {
    before(async () => {
      const listening = (f: ForwarderProcess) =>
        f
          .waitForLog((l) => l.msg === 'http server listening', 30_000, 'http server')
          .then((l) => `127.0.0.1:${String(l['port'])}`);
      fwd = pool.start(
        writeConfig(
          testConfig(mappings, {
            mqtt: { max_payload_bytes: PAYLOAD_LIMIT },
            shutdown_timeout_ms: 1000,
          }),
        ),
      );
      down = pool.start(
        writeConfig(
          testConfig(
            [{ name: 'orphan', mqtt: { topic: `${base}-down/#`, qos: 1 }, kafka: { topic: base } }],
            { kafka: { port: await closedPort() }, shutdown_timeout_ms: 500 },
          ),
        ),
      );
      [target, downTarget] = await Promise.all([listening(fwd), listening(down)]);
      await ready(fwd);

      // A copy of the shipped rules with every `for:` at 1 s, so an alert fires within the test;
      // the shipped file is loaded as it is, beside it.
      const fast = parse(readFileSync(RULES, 'utf8')) as {
        groups: { name: string; rules: { for?: string }[] }[];
      };
      for (const g of fast.groups) {
        g.name = `${g.name}-test-fast`;
        for (const r of g.rules) r.for = '1s';
      }
      const fastFile = path.join(prometheus.dir, 'fast-alerts.yml');
      writeFileSync(fastFile, stringify(fast));
      await prometheus.start({
        global: { scrape_interval: '1s', scrape_timeout: '1s', evaluation_interval: '1s' },
        rule_files: [RULES, fastFile],
        scrape_configs: [
          { job_name: JOB, static_configs: [{ targets: [target] }] },
          { job_name: DOWN_JOB, static_configs: [{ targets: [downTarget] }] },
        ],
      });
      // A baseline sample of every counter before the load, so rate() sees it rise.
      await until(
        'both targets scraped',
        async () => ((await prometheus.query('up == 1')).length === 2 ? true : undefined),
        patiently(10_000),
      );

      const scraped = (expr: string, min: number) =>
        until(
          `${expr} >= ${min} in Prometheus`,
          async () => {
            const r = await prometheus.query(expr);
            return r.length > 0 && Number(r[0]!.value[1]) >= min ? true : undefined;
          },
          patiently(20_000),
        );
      // One message per mapping first: a labelled series appears at its first increment, which
      // rate() cannot see, so the load itself must come after a scrape that has the series.
      await Promise.all(
        ['', '-skip', '-dlq'].map((suffix) =>
          publishMany({
            count: 1,
            qos: 1,
            topic: () => `${base}${suffix}/warm-up`,
            payload: () => (suffix ? BIG : 'warm-up'),
          }),
        ),
      );
      await Promise.all([
        scraped(`sum(mkf_messages_forwarded_total{job="${JOB}"})`, 1),
        scraped(`sum(mkf_messages_skipped_total{job="${JOB}"})`, 1),
        scraped(`sum(mkf_messages_dead_lettered_total{job="${JOB}"})`, 1),
      ]);

      await Promise.all([
        publishMany({
          count: LOAD,
          qos: 1,
          topic: (i) => `${base}/dev${i % 50}`,
          payload: (i) => JSON.stringify({ i, t: Date.now() }),
          timeoutMs: 30_000,
        }),
        ...['skip', 'dlq'].map((kind) =>
          publishMany({
            count: REFUSED,
            qos: 1,
            topic: (i) => `${base}-${kind}/dev${i}`,
            payload: () => BIG,
            timeoutMs: 30_000,
          }),
        ),
      ]);
      await Promise.all([
        scraped(`sum(mkf_messages_forwarded_total{job="${JOB}"})`, LOAD + 1),
        scraped(`sum(mkf_messages_skipped_total{job="${JOB}"})`, REFUSED + 1),
        scraped(`sum(mkf_messages_dead_lettered_total{job="${JOB}"})`, REFUSED + 1),
      ]);
      // Two more scrapes, so every rate() window holds the end of the load.
      await sleep(2_500);
    });

    test('every dashboard query returns the series its panel draws', async (t) => {
      const targets = dashboardTargets();
      assert.ok(targets.length >= 20, `only ${targets.length} dashboard targets`);
      const all = mappings.map((m) => m.name);
      // Mappings whose counter the load made rise: exactly these (the other mappings' series
      // exist from the start at 0), or at least these.
      const mappingsOf: [RegExp, 'exactly' | 'includes', string[]][] = [
        [/mkf_messages_failed_total/, 'exactly', ['refused-dlq', 'refused-skip']],
        [/mkf_messages_skipped_total/, 'exactly', ['refused-skip']],
        [/mkf_messages_dead_lettered_total/, 'exactly', ['refused-dlq']],
        [/mkf_messages_forwarded_total/, 'includes', ['telemetry']],
        [/mkf_delivery_latency_seconds/, 'includes', ['telemetry']],
      ];
      /** Counters with one series per mapping from the start (the settler zeroes them). */
      const zeroed = /mkf_messages_(forwarded|failed|skipped|dead_lettered)_total/;
      const problems: string[] = [];
      for (const q of targets) {
        const expr = substitute(q.expr, JOB);
        const what = `panel "${q.panel}" ${q.refId}: ${expr}`;
        let result: Series[];
        try {
          result = await prometheus.query(expr);
        } catch (err) {
          problems.push(`${what}: ${String(err)}`);
          continue;
        }
        t.diagnostic(
          `${q.panel} ${q.refId} -> ${
            result
              .map((s) => `${JSON.stringify(s.metric)} ${Number(s.value[1]).toPrecision(4)}`)
              .join(', ') || 'EMPTY'
          }`,
        );
        if (result.length === 0) {
          problems.push(`${what}: empty result`);
          continue;
        }
        if (!result.some((s) => Number.isFinite(Number(s.value[1]))))
          problems.push(`${what}: no finite value`);
        // The load made every counter the dashboard rates rise within the last minute, for the
        // mappings it was meant to; for an 'exactly' metric the others stay at 0.
        if (
          /rate\(mkf_(messages_(forwarded|failed|skipped|dead_lettered)|mqtt_messages_received)_total/.test(
            expr,
          )
        ) {
          const rising = mappingsOf.find(([re]) => re.test(expr));
          for (const s of result) {
            const m = s.metric['mapping'];
            const v = Number(s.value[1]);
            const mustRise = m === undefined || rising === undefined || rising[2].includes(m);
            if (mustRise && !(v > 0))
              problems.push(`${what}: the rate of ${m ?? 'the sum'} is not above 0`);
            if (!mustRise && rising?.[1] === 'exactly' && v !== 0)
              problems.push(`${what}: ${m} rises (${v}), it should stay at 0`);
          }
        }
        // $job filters: raw series come from the selected job's forwarder only.
        for (const s of result) {
          if (s.metric['job'] !== undefined && s.metric['job'] !== JOB)
            problems.push(`${what}: series of job ${s.metric['job']}`);
          if (s.metric['instance'] !== undefined && s.metric['instance'] !== target)
            problems.push(`${what}: series of instance ${s.metric['instance']}`);
        }
        const legend = q.legendFormat ?? '';
        if (legend.includes('{{instance}}') && !result.every((s) => s.metric['instance']))
          problems.push(`${what}: legend names {{instance}}, a series has none`);
        if (legend.includes('{{mapping}}') || /by \([^)]*mapping/.test(expr)) {
          const got = [...new Set(result.map((s) => s.metric['mapping'] ?? ''))].sort();
          if (got.some((m) => !all.includes(m)))
            problems.push(`${what}: mapping labels ${JSON.stringify(got)}`);
          if (zeroed.test(expr) && JSON.stringify(got) !== JSON.stringify([...all].sort()))
            problems.push(`${what}: mappings ${JSON.stringify(got)}, want every mapping`);
          for (const [re, , want] of mappingsOf) {
            if (re.test(expr) && !want.every((m) => got.includes(m)))
              problems.push(`${what}: mappings ${JSON.stringify(got)}, want at least ${want}`);
          }
          if (/histogram_quantile/.test(expr)) {
            const telemetry = result.find((s) => s.metric['mapping'] === 'telemetry');
            const v = Number(telemetry?.value[1]);
            if (!(v > 0 && v <= 30)) problems.push(`${what}: telemetry latency ${v}`);
          }
        }
      }
      // A stat panel shows a number, never "No data", for a forwarder that has forwarded
      // nothing and refused nothing: the one whose Kafka is unreachable.
      for (const q of targets.filter((x) => x.type === 'stat')) {
        const expr = substitute(q.expr, DOWN_JOB);
        const result = await prometheus.query(expr);
        t.diagnostic(
          `[${DOWN_JOB}] ${q.panel} ${q.refId} -> ${result.map((s) => s.value[1]).join(', ') || 'EMPTY'}`,
        );
        if (result.length !== 1 || !Number.isFinite(Number(result[0]!.value[1])))
          problems.push(`stat panel "${q.panel}" for job ${DOWN_JOB}: ${JSON.stringify(result)}`);
      }
      assert.deepEqual(problems, []);

      // A few values the load fixes.
      const value = async (expr: string) => Number((await prometheus.query(expr))[0]?.value[1]);
      assert.equal(await value(`min(mkf_mqtt_connected{job="${JOB}"})`), 1);
      assert.equal(await value(`sum(mkf_kafka_producers_connected{job="${JOB}"})`), 1);
      assert.equal(await value(`sum(mkf_messages_forwarded_total{job="${JOB}"})`), LOAD + 1);
      assert.equal(await value(`sum(mkf_kafka_producers_connected{job="${DOWN_JOB}"})`), 0);
      assert.ok((await value(`sum(mkf_batch_records_count{job="${JOB}"})`)) >= 1);
    });

    test('every alert rule loads and evaluates without error', async () => {
      const groups = await until(
        'every rule evaluated',
        async () => {
          const g = await prometheus.rules();
          return g.flatMap((x) => x.rules).every((r) => r.health !== 'unknown') ? g : undefined;
        },
        patiently(10_000),
      );
      const shipped = groups.find((g) => g.file === RULES && g.name === 'mqtt-kafka-forwarder');
      assert.ok(shipped, `shipped group not loaded: ${JSON.stringify(groups.map((g) => g.name))}`);
      assert.deepEqual(shipped.rules.map((r) => r.name).sort(), [
        'MkfForwarderDown',
        'MkfInflightWindowStuck',
        'MkfKafkaProducerDown',
        'MkfMessageHeld',
        'MkfMessagesDeadLettered',
        'MkfMessagesSkipped',
        'MkfMqttDisconnected',
      ]);
      for (const r of groups.flatMap((g) => g.rules)) {
        assert.equal(r.type, 'alerting', r.name);
        assert.equal(r.health, 'ok', `${r.name}: ${r.lastError}`);
        assert.ok(!r.lastError, `${r.name}: ${r.lastError}`);
      }
    });

    test('a forwarder whose Kafka is unreachable raises MkfKafkaProducerDown', async () => {
      const alertsOf = async (group: string, rule: string) => {
        const g = (await prometheus.rules()).find((x) => x.name === group);
        return g?.rules.find((r) => r.name === rule)?.alerts ?? [];
      };
      const fast = 'mqtt-kafka-forwarder-test-fast';
      const firing = await until(
        'MkfKafkaProducerDown firing (test copy, for: 1s)',
        async () => {
          const a = await alertsOf(fast, 'MkfKafkaProducerDown');
          return a.some((x) => x.state === 'firing') ? a : undefined;
        },
        patiently(15_000),
      );
      assert.deepEqual(
        firing.map((a) => [a.labels['job'], a.labels['instance'], a.labels['severity']]),
        [[DOWN_JOB, downTarget, 'critical']],
      );
      // The shipped rule (for: 2m) has seen the same and waits.
      const shipped = await alertsOf('mqtt-kafka-forwarder', 'MkfKafkaProducerDown');
      assert.deepEqual(
        shipped.map((a) => [a.labels['instance'], a.state]),
        [[downTarget, 'pending']],
      );
      // The refusals of the load raise the skip and dead-letter alerts, one per mapping, and
      // nothing else fires (the healthy forwarder's window drained, nothing is held).
      const fired = await until(
        'skip and dead-letter alerts firing (test copy)',
        async () => {
          const g = (await prometheus.rules()).find((x) => x.name === fast)!;
          const f = g.rules.flatMap((r) =>
            (r.alerts ?? [])
              .filter((a) => a.state === 'firing')
              .map((a) => `${r.name} ${a.labels['job']} ${a.labels['mapping'] ?? ''}`.trim()),
          );
          return f.length >= 3 ? f.sort() : undefined;
        },
        patiently(10_000),
      );
      assert.deepEqual(fired, [
        `MkfKafkaProducerDown ${DOWN_JOB}`,
        `MkfMessagesDeadLettered ${JOB} refused-dlq`,
        `MkfMessagesSkipped ${JOB} refused-skip`,
      ]);
    });

    after(async () => {
      await pool.stop(fwd);
    });
  });
});
