import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { generateConfigDocs, REGENERATE_COMMAND } from '../../src/config/docs';

// Compiled to build/test/unit/, three levels below the repository root.
const repoRoot = path.resolve(__dirname, '..', '..', '..');

describe('generated config docs', () => {
  it('are up to date with the schema', async () => {
    for (const file of await generateConfigDocs(repoRoot)) {
      const current = readFileSync(path.join(repoRoot, file.path), 'utf8');
      assert.ok(
        current === file.content,
        `${file.path} is out of date with src/config/schema.ts: run \`npx tsc -p tsconfig.json && ${REGENERATE_COMMAND}\``,
      );
    }
  });

  it('document every key of the reference config', async () => {
    const [markdown] = await generateConfigDocs(repoRoot);
    for (const key of [
      'mqtt.host',
      'mqtt.tls.ca_cert',
      'kafka.config',
      'forwarding[].wrap_as_json',
    ]) {
      assert.ok(markdown?.content.includes(`\`${key}\``), key);
    }
  });
});
