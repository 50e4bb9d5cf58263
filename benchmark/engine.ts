/**
 * Everything the benchmark takes from the engine (../src), in one place: the ceilings measure
 * the engine's own code paths (its batch codec, its producer lanes, its config schema and the
 * producer settings derived from it), so they import them rather than copies. One file knows
 * where those modules live; when src/ is reorganised, only this file changes.
 */
export { buildProducerConfig } from '../src/config/kafka';
export { configSchema } from '../src/config/schema';
export { InlineLanes, WorkerLanes } from '../src/dispatch/lanes';
export type { ProducerLanes } from '../src/dispatch/lanes';
export { createLogger } from '../src/observability/logger';
export type { WorkerInit } from '../src/types';
export { forEachRecord, packBatch } from '../src/worker/codec';
export type { PackedRecord } from '../src/worker/codec';
