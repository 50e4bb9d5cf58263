/**
 * Everything the benchmark takes from the engine (../src), in one place: the ceilings measure
 * the engine's own code paths (its batch codec, its producer lanes, its config schema and the
 * producer settings derived from it), so they import them rather than copies. One file knows
 * where those modules live; when src/ is reorganised, only this file changes.
 */
export { buildProducerConfig } from '../src/config/kafka';
export { configSchema } from '../src/config/schema';
export { InlineLanes, WorkerLanes } from '../src/pipeline/4-kafka-produce/lanes';
export type { ProducerLanes } from '../src/pipeline/4-kafka-produce/lanes';
export { createLogger } from '../src/observability/logger';
export type { WorkerInit } from '../src/pipeline/4-kafka-produce/protocol';
export { forEachRecord, packBatch } from '../src/pipeline/4-kafka-produce/codec';
export type { PackedRecord } from '../src/pipeline/4-kafka-produce/codec';
