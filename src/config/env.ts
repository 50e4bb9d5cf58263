/**
 * `${VAR}` and `${VAR:-default}` in config values, substituted after YAML parsing (so a value
 * can never change the document's structure), then coerced to the type the schema expects.
 */
import type { Problem } from './checks';
import { scalarKind, schemaAt } from './introspect';
import type { ConfigPath } from './paths';
import { isSecretPath } from './paths';
import { configSchema } from './schema';

export type Env = Readonly<Record<string, string | undefined>>;

export interface Substitution {
  path: ConfigPath;
  /** The scalar as written in the file, before substitution. */
  template: string;
}

const VARIABLE_REFERENCE = /^([A-Za-z_][A-Za-z0-9_]*)(?::-(.*))?$/su;

/**
 * Environment substitution on one parsed scalar. Working on values rather than on the file text
 * means a variable's content can never add keys, close quotes or start comments.
 */
export function substituteString(
  s: string,
  env: Env,
  options: { hideValue?: boolean } = {},
): { value: string; substituted: boolean; errors: string[] } {
  let value = '';
  let substituted = false;
  const errors: string[] = [];
  let i = 0;
  while (i < s.length) {
    if (s.startsWith('$${', i)) {
      value += '${';
      i += 3;
      continue;
    }
    if (!s.startsWith('${', i)) {
      value += s[i];
      i += 1;
      continue;
    }
    const end = s.indexOf('}', i + 2);
    if (end === -1) {
      const where = options.hideValue ? '' : ` in ${JSON.stringify(s)}`;
      errors.push(`unterminated "\${"${where} (write "$\${" for a literal "\${")`);
      value += s.slice(i);
      break;
    }
    const body = s.slice(i + 2, end);
    const match = VARIABLE_REFERENCE.exec(body);
    if (!match) {
      const shown = options.hideValue ? '' : ` "\${${body}}"`;
      errors.push(
        `invalid variable reference${shown}: expected \${NAME} or \${NAME:-default} ` +
          `with NAME made of letters, digits and '_' (write "$\${" for a literal "\${")`,
      );
    } else {
      const name = match[1] as string;
      const fallback = match[2];
      const set = env[name];
      substituted = true;
      // Like the shell's ${NAME:-default}: an empty variable also takes the default.
      if (fallback !== undefined && (set === undefined || set === '')) value += fallback;
      else if (set !== undefined) value += set;
      else errors.push(`environment variable ${name} is not set`);
    }
    i = end + 1;
  }
  return { value, substituted, errors };
}

export function substituteTree(
  node: unknown,
  at: ConfigPath,
  env: Env,
  problems: Problem[],
  substitutions: Substitution[],
): unknown {
  if (typeof node === 'string') {
    if (!node.includes('$')) return node;
    const r = substituteString(node, env, { hideValue: isSecretPath(at) });
    for (const message of r.errors) problems.push({ path: at, message });
    if (r.errors.length > 0) return node;
    if (r.substituted) substitutions.push({ path: at, template: node });
    return r.value;
  }
  if (Array.isArray(node)) {
    return node.map((item, i) => substituteTree(item, [...at, i], env, problems, substitutions));
  }
  if (typeof node === 'object' && node !== null) {
    const out: Record<string, unknown> = {};
    for (const [key, value] of Object.entries(node)) {
      // defineProperty, because assigning a YAML key "__proto__" would replace the prototype
      // instead of creating a key the schema then reports as unknown.
      Object.defineProperty(out, key, {
        value: substituteTree(value, [...at, key], env, problems, substitutions),
        enumerable: true,
        writable: true,
        configurable: true,
      });
    }
    return out;
  }
  return node;
}

/** A number as written in YAML; a substituted string of this shape becomes a number. */
export const DECIMAL = /^-?\d+(?:\.\d+)?$/u;

/**
 * `port: ${MQTT_PORT}` is a string after substitution; the reference service substituted text
 * before parsing, so there it was a number. Convert where the schema expects one, and only
 * for whole decimal numbers and the exact words true/false, so no value changes meaning.
 */
export function coerceSubstituted(data: unknown, substitutions: readonly Substitution[]): void {
  for (const { path: at } of substitutions) {
    const parent = valueAt(data, at.slice(0, -1));
    const key = at[at.length - 1];
    if (key === undefined || typeof parent !== 'object' || parent === null) continue;
    const container = parent as Record<PropertyKey, unknown>;
    const value = container[key];
    if (typeof value !== 'string') continue;
    const kind = scalarKind(schemaAt(configSchema, at));
    if (kind === 'number' && DECIMAL.test(value)) container[key] = Number(value);
    else if (kind === 'boolean' && (value === 'true' || value === 'false')) {
      container[key] = value === 'true';
    }
  }
}

function valueAt(data: unknown, at: ConfigPath): unknown {
  let node = data;
  for (const key of at) {
    if (typeof node !== 'object' || node === null) return undefined;
    node = (node as Record<PropertyKey, unknown>)[key];
  }
  return node;
}

// ---------------------------------------------------------------------------------------------
// zod issues → one human line each
