#!/usr/bin/env node
// Runs every *.test.ts under src/ and test/ with Node's built-in test runner.
// Node 20's `--test` does not expand globs itself, so we collect the files here.
// Extra arguments are passed through (e.g. a file filter: `npm test -- payments`).
import { readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { spawnSync } from 'node:child_process';

const roots = ['src', 'test'];
const filters = process.argv.slice(2).filter((a) => !a.startsWith('-'));
const passFlags = process.argv.slice(2).filter((a) => a.startsWith('-'));

function walk(dir, out) {
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) walk(p, out);
    else if (name.endsWith('.test.ts')) out.push(p);
  }
  return out;
}

const files = roots
  .flatMap((r) => {
    try {
      return walk(r, []);
    } catch {
      return [];
    }
  })
  .filter((f) => filters.length === 0 || filters.some((x) => f.includes(x)))
  .sort();
if (files.length === 0) {
  console.error('no test files matched');
  process.exit(1);
}
// The whole suite starts with the lint and format check (Biome): a habit, not a separate step.
if (filters.length === 0) {
  const lint = spawnSync(process.execPath, ['node_modules/@biomejs/biome/bin/biome', 'check', '--max-diagnostics=20'], {
    stdio: 'inherit',
  });
  if (lint.status !== 0) {
    console.error('lint failed: run `npm run lint` (and `npm run format` for formatting)');
    process.exit(lint.status ?? 1);
  }
}
const concurrency = process.env.TEST_CONCURRENCY ?? '2';
const r = spawnSync(
  process.execPath,
  [
    '--import',
    'tsx',
    '--test',
    `--test-concurrency=${concurrency}`,
    ...passFlags,
    ...files.map((f) => relative('.', f)),
  ],
  { stdio: 'inherit' },
);
process.exit(r.status ?? 1);
