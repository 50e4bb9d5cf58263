/**
 * Regenerates docs/CONFIG.md and docs/config.schema.json from the config schema.
 * Run after building: `node build/scripts/gen-config-docs.js`.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { generateConfigDocs } from '../src/config/docs';

// Compiled to build/scripts/, two levels below the repository root.
const repoRoot = path.resolve(__dirname, '..', '..');

async function main(): Promise<void> {
  for (const file of await generateConfigDocs(repoRoot)) {
    const target = path.join(repoRoot, file.path);
    mkdirSync(path.dirname(target), { recursive: true });
    writeFileSync(target, file.content);
    console.log(`wrote ${file.path}`);
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
