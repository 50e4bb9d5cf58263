/** docs/ERRORS.md lists exactly the codes src/errors.ts declares, each once. */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { ERROR_CODES } from '../../src/errors';
import { REPO_ROOT } from '../helpers/env';

test('docs/ERRORS.md documents every error code, and no other', () => {
  const doc = readFileSync(path.join(REPO_ROOT, 'docs', 'ERRORS.md'), 'utf8');
  const documented = [...doc.matchAll(/^\| `(ERR_[A-Z_]+)` +\|/gmu)].map((m) => m[1]!);
  const declared = Object.values(ERROR_CODES);
  assert.deepEqual([...documented].sort(), [...new Set(documented)].sort(), 'each row once');
  assert.deepEqual([...documented].sort(), [...declared].sort());
  assert.equal(new Set(declared).size, declared.length, 'no code declared twice');
});
