/**
 * What a config reload changes, compared with the config running now. Only `forwarding` is
 * applied live; any other difference needs a restart and is only reported, by the paths of the
 * values that differ (never the values: some are secrets).
 */
import { isDeepStrictEqual } from 'node:util';
import type { ConfigPath } from './paths';
import { formatPath } from './paths';
import type { Config, Mapping } from './schema';

/** Mapping names, each list in config order (removed: in the running config's order). */
export interface MappingChanges {
  readonly added: readonly string[];
  readonly removed: readonly string[];
  /** In both configs under the same name, with any field different. */
  readonly changed: readonly string[];
  readonly unchanged: readonly string[];
}

export interface ReloadDiff {
  /** Paths outside `forwarding` whose values differ, named as problem lines name them. */
  readonly restartRequired: readonly string[];
  readonly mappings: MappingChanges;
}

/** Mappings are identified by name: a renamed mapping is one removed and one added. */
export function diffConfigs(running: Config, next: Config): ReloadDiff {
  const restartRequired: string[] = [];
  for (const key of new Set([...Object.keys(running), ...Object.keys(next)])) {
    if (key === 'forwarding') continue;
    differingPaths(
      (running as Record<string, unknown>)[key],
      (next as Record<string, unknown>)[key],
      [key],
      restartRequired,
    );
  }
  return { restartRequired, mappings: diffMappings(running.forwarding, next.forwarding) };
}

export function diffMappings(
  running: readonly Mapping[],
  next: readonly Mapping[],
): MappingChanges {
  const before = new Map(running.map((m) => [m.name, m]));
  const after = new Set(next.map((m) => m.name));
  const added: string[] = [];
  const changed: string[] = [];
  const unchanged: string[] = [];
  for (const m of next) {
    const old = before.get(m.name);
    if (old === undefined) added.push(m.name);
    else if (isDeepStrictEqual(old, m)) unchanged.push(m.name);
    else changed.push(m.name);
  }
  const removed = running.filter((m) => !after.has(m.name)).map((m) => m.name);
  return { added, removed, changed, unchanged };
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Descends through objects to the first level that differs: a key added or removed, or a leaf. */
function differingPaths(a: unknown, b: unknown, at: ConfigPath, out: string[]): void {
  if (isPlainObject(a) && isPlainObject(b)) {
    const keys = new Set([...Object.keys(a), ...Object.keys(b)]);
    for (const k of keys) differingPaths(a[k], b[k], [...at, k], out);
    return;
  }
  if (!isDeepStrictEqual(a, b)) out.push(formatPath(at));
}
