// Writes the terminal protocol's JSON Schemas to docs/terminal-protocol/ (npm run docs:terminal-protocol).
// schemas.test.ts fails when the files there differ from what this writes.
import { writeFileSync, mkdirSync, readdirSync, unlinkSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { allSchemas, schemaJson } from './schemas.ts';

export const SCHEMA_DIR = join(dirname(fileURLToPath(import.meta.url)), '../../../../docs/terminal-protocol');

export function writeSchemas(dir = SCHEMA_DIR): string[] {
  mkdirSync(dir, { recursive: true });
  const schemas = allSchemas();
  for (const f of readdirSync(dir)) if (f.endsWith('.schema.json') && !(f in schemas)) unlinkSync(join(dir, f));
  return Object.entries(schemas).map(([name, s]) => {
    writeFileSync(join(dir, name), schemaJson(name, s));
    return join(dir, name);
  });
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  for (const f of writeSchemas()) process.stdout.write(`wrote ${f}\n`);
}
