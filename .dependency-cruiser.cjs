/* global module */
/**
 * Layering of the code base, checked by `npm run lint` (dependency-cruiser). Each rule says why
 * it exists; docs/DESIGN.md ("File map") describes the layers.
 */
/** @type {import('dependency-cruiser').IConfiguration} */
module.exports = {
  forbidden: [
    {
      name: 'no-cycles',
      severity: 'error',
      comment: 'A cycle makes two modules one: neither can be read, tested or changed alone.',
      from: {},
      to: { circular: true },
    },
    {
      name: 'src-is-the-product',
      severity: 'error',
      comment: 'The shipped service never depends on the benchmark, the tests or the scripts.',
      from: { path: '^src/' },
      to: { path: '^(benchmark|test|scripts)/' },
    },
    {
      name: 'dependency-internals-only-in-seams',
      severity: 'error',
      comment:
        'Internal modules of a dependency are reached only from src/seams/, where a seam test pins the version and checks the behaviour relied on.',
      from: { path: '^src/', pathNot: '^src/seams/' },
      to: {
        // Anything of these packages but the module their name resolves to.
        path: '^node_modules/(node-rdkafka|mqtt|piscina|prom-client|pino)/',
        pathNot:
          '^node_modules/(node-rdkafka/lib/index|mqtt/build/index|piscina/dist/main|prom-client/index|pino/pino)\\.js$',
      },
    },
    {
      name: 'seams-stand-alone',
      severity: 'error',
      comment: 'A seam wraps one dependency; it knows nothing of the pipeline that uses it.',
      from: { path: '^src/seams/' },
      to: { path: '^src/', pathNot: '^src/(seams/|errors\\.ts$)' },
    },
    {
      name: 'producer-threads-load-no-main-thread-stage',
      severity: 'error',
      comment:
        'src/pipeline/4-kafka-produce runs on every producer thread: it must not pull in the main-thread stages, the config loader or the HTTP server.',
      from: { path: '^src/pipeline/4-kafka-produce/' },
      to: {
        path: '^src/',
        pathNot: '^src/(pipeline/4-kafka-produce/|seams/|errors\\.ts$|observability/logger\\.ts$)',
      },
    },
    {
      name: 'acks-know-no-kafka',
      severity: 'error',
      comment:
        'src/pipeline/6-mqtt-ack (the window and the ack gate) decides acks from confirmations alone, never from Kafka details.',
      from: { path: '^src/pipeline/6-mqtt-ack/' },
      to: { path: '^src/', pathNot: '^src/(pipeline/6-mqtt-ack/|seams/|errors\\.ts$)' },
    },
    {
      name: 'benchmark-through-its-engine-facade',
      severity: 'error',
      comment:
        'The benchmark measures the engine through benchmark/engine.ts only, so a move in src/ changes one file of it.',
      from: { path: '^benchmark/', pathNot: '^benchmark/engine\\.ts$' },
      to: { path: '^src/' },
    },
    {
      name: 'config-below-the-pipeline',
      severity: 'error',
      comment: 'The config is declared and checked without knowing the pipeline that uses it.',
      from: { path: '^src/config/' },
      to: { path: '^src/(pipeline|observability|forwarder)' },
    },
    {
      name: 'observability-below-the-pipeline',
      severity: 'error',
      comment: 'Metrics, logs and probes read state through interfaces; they import no stage.',
      from: { path: '^src/observability/' },
      to: { path: '^src/(pipeline|forwarder|config)' },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    exclude: { path: '^(build|\\.stack)/' },
  },
};
