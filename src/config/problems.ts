/**
 * zod's issues, worded for the person fixing the file: the path, what was found (never a
 * secret), what was expected, and the closest known key for a typo.
 */
import { z } from 'zod';
import type { Problem } from './checks';
import { DECIMAL } from './env';
import { isIntegerSchema, objectKeys, schemaAt } from './introspect';
import { formatPath, isSecretPath } from './paths';
import { configSchema } from './schema';

type Issue = z.core.$ZodIssue;

function describeValue(value: unknown, secret: boolean): string {
  if (value === null) return 'an empty value';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'a mapping';
  if (secret) return `a ${typeof value} (value hidden)`;
  if (typeof value === 'string') {
    const shown = value.length > 80 ? `${value.slice(0, 77)}...` : value;
    return JSON.stringify(shown);
  }
  return String(value);
}

const EXPECTED: Record<string, string> = {
  string: 'a string',
  number: 'a number',
  int: 'an integer',
  boolean: 'true or false',
  object: 'a mapping',
  record: 'a mapping',
  array: 'a list',
};

function joinOr(items: readonly string[]): string {
  return items.length <= 1
    ? (items[0] ?? '')
    : `${items.slice(0, -1).join(', ')} or ${items[items.length - 1]}`;
}

function levenshtein(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      cur[j] = Math.min((prev[j] ?? 0) + 1, (cur[j - 1] ?? 0) + 1, (prev[j - 1] ?? 0) + cost);
    }
    prev = cur;
  }
  return prev[b.length] ?? 0;
}

/** The closest candidate within 3 edits (and closer than a full rewrite), if any. */
export function closest(word: string, candidates: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const c of candidates) {
    const d = levenshtein(word.toLowerCase(), c.toLowerCase());
    if (d <= 3 && d < Math.max(word.length, c.length) && d < bestDistance) {
      best = c;
      bestDistance = d;
    }
  }
  return best;
}

function isDefaultMessage(issue: Issue): boolean {
  const locale = z.config().localeError;
  const m = locale?.(issue as never);
  return (typeof m === 'string' ? m : m?.message) === issue.message;
}

function describeIssue(issue: Issue, fromTemplate: ReadonlyMap<string, string>): string {
  const secret = isSecretPath(issue.path);
  const input: unknown = issue.input;
  const template = fromTemplate.get(formatPath(issue.path));
  const got = `got ${describeValue(input, secret)}`;
  const origin = template === undefined ? '' : ` (substituted from ${JSON.stringify(template)})`;

  switch (issue.code) {
    case 'invalid_type': {
      if (input === undefined) return 'required key is missing';
      const target = schemaAt(configSchema, issue.path);
      const wantsInt = target !== undefined && isIntegerSchema(target);
      const expected = wantsInt ? 'an integer' : (EXPECTED[issue.expected] ?? issue.expected);
      let hint = '';
      if (input === null && (issue.expected === 'object' || issue.expected === 'record')) {
        hint = '; write {} for an empty mapping';
      } else if (
        typeof input === 'string' &&
        template === undefined &&
        ((issue.expected !== 'string' && DECIMAL.test(input)) ||
          (issue.expected === 'boolean' && (input === 'true' || input === 'false')))
      ) {
        hint = '; remove the quotes';
      }
      return `expected ${expected}, ${got}${origin}${hint}`;
    }
    case 'too_small':
    case 'too_big': {
      const small = issue.code === 'too_small';
      const bound = small ? issue.minimum : issue.maximum;
      if (issue.origin === 'string') {
        if (small && Number(bound) === 1) return 'must not be empty';
        return `must be at ${small ? 'least' : 'most'} ${bound} characters long`;
      }
      if (issue.origin === 'array') {
        return `must have at ${small ? 'least' : 'most'} ${bound} ${Number(bound) === 1 ? 'entry' : 'entries'}`;
      }
      const relation = small
        ? issue.inclusive
          ? 'at least'
          : 'greater than'
        : issue.inclusive
          ? 'at most'
          : 'less than';
      return `must be ${relation} ${bound} (${got})${origin}`;
    }
    case 'invalid_value': {
      const options = issue.values.map((v) => JSON.stringify(v));
      const suggestion =
        typeof input === 'string'
          ? closest(
              input,
              issue.values.filter((v): v is string => typeof v === 'string'),
            )
          : undefined;
      const didYouMean =
        suggestion === undefined ? '' : `; did you mean ${JSON.stringify(suggestion)}?`;
      return `must be one of ${joinOr(options)} (${got}${didYouMean})${origin}`;
    }
    case 'invalid_union': {
      const expected = issue.errors.map((branch) => {
        const only = branch.length === 1 ? branch[0] : undefined;
        if (only?.code !== 'invalid_type' || only.path.length !== 0) return undefined;
        return only.expected === 'boolean'
          ? 'a boolean'
          : (EXPECTED[only.expected] ?? only.expected);
      });
      if (expected.every((e): e is string => e !== undefined)) {
        return `expected ${joinOr([...new Set(expected)])}, ${got}${origin}`;
      }
      return `${issue.message} (${got})${origin}`;
    }
    default:
      return `${issue.message}${origin}`;
  }
}

/** One problem line per issue; of two bounds zod reports for one field, the tighter. */
export function issuesToProblems(
  issues: readonly Issue[],
  fromTemplate: ReadonlyMap<string, string>,
): Problem[] {
  const kept: Issue[] = [];
  // z.int() reports its own safe-integer bound next to the field's real bound; keep the tighter.
  const boundIndex = new Map<string, number>();
  for (const issue of issues) {
    if (issue.code !== 'too_big' && issue.code !== 'too_small') {
      kept.push(issue);
      continue;
    }
    const key = `${formatPath(issue.path)}\u0000${issue.code}`;
    const index = boundIndex.get(key);
    const seen = index === undefined ? undefined : kept[index];
    if (index === undefined || seen === undefined || seen.code !== issue.code) {
      boundIndex.set(key, kept.length);
      kept.push(issue);
    } else if (
      issue.code === 'too_big'
        ? Number(issue.maximum) < Number((seen as typeof issue).maximum)
        : Number(issue.minimum) > Number((seen as typeof issue).minimum)
    ) {
      kept[index] = issue;
    }
  }
  return kept.flatMap((issue) => issueToProblems(issue, fromTemplate));
}

function issueToProblems(issue: Issue, fromTemplate: ReadonlyMap<string, string>): Problem[] {
  if (issue.code === 'unrecognized_keys') {
    const known = objectKeys(schemaAt(configSchema, issue.path));
    return issue.keys.map((key) => {
      const suggestion = closest(key, known);
      const message =
        suggestion !== undefined
          ? `unknown key (did you mean ${JSON.stringify(suggestion)}?)`
          : `unknown key (expected one of: ${known.join(', ')})`;
      return { path: [...issue.path, key], message };
    });
  }
  // Messages the schema itself chose (custom rules, per-field error texts) already say it best.
  if (issue.code === 'custom' || !isDefaultMessage(issue)) {
    return [{ path: issue.path, message: issue.message }];
  }
  return [{ path: issue.path, message: describeIssue(issue, fromTemplate) }];
}
