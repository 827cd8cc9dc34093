#!/usr/bin/env node
// Runs every *.test.ts under src/ and test/ with Node's built-in test runner.
// Node 20's `--test` does not expand globs itself, so we collect the files here.
// Extra arguments are passed through (e.g. a file filter: `npm test -- payments`).
// `--durations` prints each file's wall and CPU time after the run (docs/testing.md).
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { spawnSync } from 'node:child_process';

const roots = ['src', 'test'];
const args = process.argv.slice(2);
const showDurations = args.includes('--durations');
const filters = args.filter((a) => !a.startsWith('-'));
const passFlags = args.filter((a) => a.startsWith('-') && a !== '--durations');

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
  .map((f) => relative('.', f))
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
  // The boundaries of src/ (.dependency-cruiser.cjs, docs/architecture.md): no cycles, platform
  // knows no module, modules meet through index.ts, tools are not domain.
  const deps = spawnSync(
    process.execPath,
    [
      'node_modules/dependency-cruiser/bin/dependency-cruise.mjs',
      'src',
      '--config',
      '.dependency-cruiser.cjs',
      '--output-type',
      'err',
    ],
    { stdio: 'inherit' },
  );
  if (deps.status !== 0) {
    console.error('boundary check failed: see docs/architecture.md, "Boundaries"');
    process.exit(deps.status ?? 1);
  }
}

// Order: the runner starts files in the order given, `concurrency` at a time, so the slowest
// files go first (a long file started last would run alone at the end while the other core
// idles). What is slow comes from the last run on this checkout (the cache below), else from
// test/durations.json (measured, committed). Files that start real processes (servers, CLIs) and
// files that work in-process alternate, so two process-heavy files rarely share the machine:
// they are the ones whose start-up times out when starved of CPU.
const CACHE = 'node_modules/.cache/tillpoint-tests';
const LAST = join(CACHE, 'durations.json');
const readJson = (p) => {
  try {
    return JSON.parse(readFileSync(p, 'utf8'));
  } catch {
    return {};
  }
};
const known = { ...readJson('test/durations.json').files, ...readJson(LAST).files };
const cost = (f) => known[f]?.ms ?? 30_000; // an unknown (new) file: assume a slow one, start it early
const spawnsProcesses = (f) =>
  /\bspawn(Sync)?\(|spawnUntil\(|startTillpoint\(|startPgCluster\(|execFile(Sync)?\(/.test(readFileSync(f, 'utf8'));
const bySlowest = (a, b) => cost(b) - cost(a) || a.localeCompare(b);
const heavy = files.filter(spawnsProcesses).sort(bySlowest);
const light = files.filter((f) => !spawnsProcesses(f)).sort(bySlowest);
const ordered = [];
while (heavy.length || light.length) {
  if (heavy.length) ordered.push(heavy.shift());
  if (light.length) ordered.push(light.shift());
}

// Each test file's process records its wall and CPU time (scripts/file-timer.mjs) for the next
// run's order and for --durations.
mkdirSync(CACHE, { recursive: true });
const runLog = join(CACHE, `run-${process.pid}.jsonl`);
rmSync(runLog, { force: true });

const concurrency = process.env.TEST_CONCURRENCY ?? '2';
const started = Date.now();
const r = spawnSync(
  process.execPath,
  [
    '--import',
    'tsx',
    '--import',
    './scripts/file-timer.mjs',
    '--test',
    `--test-concurrency=${concurrency}`,
    ...passFlags,
    ...ordered,
  ],
  { stdio: 'inherit', env: { ...process.env, TEST_DURATIONS_FILE: runLog } },
);

const rows = existsSync(runLog)
  ? readFileSync(runLog, 'utf8')
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l))
  : [];
rmSync(runLog, { force: true });
if (rows.length > 0) {
  const last = readJson(LAST);
  const merged = { ...last.files };
  for (const row of rows) merged[row.file] = { ms: row.ms, cpuMs: row.cpuMs };
  writeFileSync(LAST, `${JSON.stringify({ files: merged }, null, 1)}\n`);
}
if (showDurations) {
  const s = (ms) => (ms / 1000).toFixed(1).padStart(7);
  console.log(`\nper-file durations (wall s, CPU s of the test process; whole run ${s(Date.now() - started)} s):`);
  for (const row of rows.sort((a, b) => b.ms - a.ms)) console.log(`${s(row.ms)} ${s(row.cpuMs)}  ${row.file}`);
}
process.exit(r.status ?? 1);
