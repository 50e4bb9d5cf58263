import { z } from 'zod';

/**
 * Read-only navigation of the config schema, so the loader (coercion, key suggestions) and the
 * docs generator derive everything from the one schema declaration instead of a second list.
 */

export type AnySchema = z.ZodType;

/** The schema a value is actually checked against, past defaults, optionality and transforms. */
export function unwrap(schema: AnySchema): AnySchema {
  let s: AnySchema = schema;
  for (;;) {
    if (
      s instanceof z.ZodDefault ||
      s instanceof z.ZodPrefault ||
      s instanceof z.ZodOptional ||
      s instanceof z.ZodNullable
    ) {
      s = s.unwrap() as AnySchema;
    } else if (s instanceof z.ZodPipe) {
      s = s.in as AnySchema;
    } else {
      return s;
    }
  }
}

/** The schema for the value at `path`, or undefined if the path leaves the schema. */
export function schemaAt(root: AnySchema, path: readonly PropertyKey[]): AnySchema | undefined {
  let s: AnySchema | undefined = root;
  for (const key of path) {
    if (s === undefined) return undefined;
    const u = unwrap(s);
    if (u instanceof z.ZodObject && typeof key === 'string') {
      s = (u.shape as Record<string, AnySchema>)[key];
    } else if (u instanceof z.ZodArray && typeof key === 'number') {
      s = u.element as AnySchema;
    } else if (u instanceof z.ZodRecord && typeof key === 'string') {
      s = u.valueType as AnySchema;
    } else {
      return undefined;
    }
  }
  return s;
}

/** Keys an object schema accepts, in declaration order (empty for anything else). */
export function objectKeys(schema: AnySchema | undefined): string[] {
  const u = schema && unwrap(schema);
  return u instanceof z.ZodObject ? Object.keys(u.shape) : [];
}

/** The description attached at any wrapping level (`.describe()` may sit outside `.default()`). */
export function descriptionOf(schema: AnySchema): string | undefined {
  let s: AnySchema = schema;
  for (;;) {
    if (s.description !== undefined) return s.description;
    if (
      s instanceof z.ZodDefault ||
      s instanceof z.ZodPrefault ||
      s instanceof z.ZodOptional ||
      s instanceof z.ZodNullable
    ) {
      s = s.unwrap() as AnySchema;
    } else if (s instanceof z.ZodPipe) {
      s = s.in as AnySchema;
    } else {
      return undefined;
    }
  }
}

export type Presence =
  | { kind: 'required' }
  | { kind: 'optional' }
  | { kind: 'default'; value: unknown; prefault: boolean };

/** Whether a key may be left out, and what it then means. */
export function presenceOf(schema: AnySchema): Presence {
  let s: AnySchema = schema;
  for (;;) {
    if (s instanceof z.ZodDefault)
      return { kind: 'default', value: s.def.defaultValue, prefault: false };
    if (s instanceof z.ZodPrefault)
      return { kind: 'default', value: s.def.defaultValue, prefault: true };
    if (s instanceof z.ZodOptional) return { kind: 'optional' };
    if (s instanceof z.ZodPipe) s = s.in as AnySchema;
    else if (s instanceof z.ZodNullable) s = s.unwrap() as AnySchema;
    else return { kind: 'required' };
  }
}

/** What a scalar field expects, for coercing substituted strings. */
export function scalarKind(schema: AnySchema | undefined): 'number' | 'boolean' | 'other' {
  const u = schema && unwrap(schema);
  if (u instanceof z.ZodNumber) return 'number';
  if (u instanceof z.ZodBoolean) return 'boolean';
  if (u instanceof z.ZodLiteral && [...u.values].every((v) => typeof v === 'number')) {
    return 'number';
  }
  // `processes: 4 | 'auto'`: a substituted "4" is the number; "auto" is not decimal and stays.
  // A union that also takes any string (kafka.config values) keeps what was written.
  if (
    u instanceof z.ZodUnion &&
    u.options.some((o) => scalarKind(o as AnySchema) === 'number') &&
    !u.options.some((o) => unwrap(o as AnySchema) instanceof z.ZodString)
  ) {
    return 'number';
  }
  return 'other';
}

/** True for z.int() and number schemas restricted to integers. */
export function isIntegerSchema(schema: AnySchema): boolean {
  const u = unwrap(schema);
  return u instanceof z.ZodNumber && u.isInt === true;
}
