#!/usr/bin/env node
// Runs every *.test.ts under src/ and test/ with Node's built-in test runner.
// Node 20's `--test` does not expand globs itself, so we collect the files here.
// Extra arguments are passed through (e.g. a file filter: `npm test -- payments`).
// `--durations` prints each file's wall and CPU time after the run (docs/testing.md).
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { spawn, spawnSync } from 'node:child_process';
import { pathToFileURL } from 'node:url';

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

function isAlive(pid) {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return e.code === 'EPERM';
  }
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
// The whole suite starts with the lint and format check (Biome) and the boundaries of src/
// (.dependency-cruiser.cjs, docs/architecture.md: no cycles, platform knows no module, modules meet
// through index.ts, tools are not domain): a habit, not a separate step. Both run while the test
// files compile (below; 8-12 s one after the other, about half side by side), and the tests start
// only once both passed.
const checks = [];
if (filters.length === 0) {
  const check = (args, failed) =>
    new Promise((done) => {
      const child = spawn(process.execPath, args, { stdio: 'inherit' });
      child.on('error', (e) => done({ failed: `${failed} (${e.message})`, status: 1 }));
      child.on('close', (status) => done(status === 0 ? undefined : { failed, status: status ?? 1 }));
    });
  checks.push(
    check(
      ['node_modules/@biomejs/biome/bin/biome', 'check', '--max-diagnostics=20'],
      'lint failed: run `npm run lint` (and `npm run format` for formatting)',
    ),
    check(
      [
        'node_modules/dependency-cruiser/bin/dependency-cruise.mjs',
        'src',
        '--config',
        '.dependency-cruiser.cjs',
        '--output-type',
        'err',
      ],
      'boundary check failed: see docs/architecture.md, "Boundaries"',
    ),
  );
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
  /\bspawn(Sync)?\(|spawnUntil\(|startTillpoint\(|startPgCluster\(|execFile(Sync)?\(|cliWithDb\(/.test(
    readFileSync(f, 'utf8'),
  );
const bySlowest = (a, b) => cost(b) - cost(a) || a.localeCompare(b);
const heavy = files.filter(spawnsProcesses).sort(bySlowest);
const startsProcesses = heavy.length > 0;
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

// Compiled once per run, not once per test process. Under `--import tsx` every test process
// transpiled-or-cache-read and resolved its whole import graph through tsx's loader hooks (which
// also see every package file): about 2 s of CPU per file before its first test (docs/testing.md,
// "Where a file's CPU goes"). Here esbuild (the compiler tsx itself uses, with the same
// tsconfig) bundles each test file and the project code it imports into plain JavaScript, with
// the code the files share in common chunks; packages stay imports of node_modules. The test
// processes then run without tsx. `import.meta.url`, `.dirname` and `.filename` are replaced by
// the source file's own, so code that finds files next to itself (migrations, samples, bin/)
// behaves as it does from source. The `tillpoint` command the tests start is compiled in the same
// build (src/cli/main.ts, its code shared with the tests' chunks): bin/tillpoint.mjs loads it when
// TEST_TILLPOINT_CLI names it, so each command a test runs is a plain Node start rather than tsx
// loading the whole import graph again (~1 s of CPU each). `--import tsx` scripts (bench/, deploy/)
// still run from source. A file that imports modules by a path computed at run time
// (`import(variable)`: it wants the source modules themselves, e.g. to compare them with what the
// bundle holds) runs from source through tsx, as does every file with TEST_TSX=1.
const useBuild = process.env.TEST_TSX !== '1';

// PGlite is PostgreSQL compiled to WebAssembly, and V8 compiles its hot functions a second time
// with the optimizing compiler (TurboFan) on background threads. A test process is short-lived and
// starts PGlite once or a few times: that recompilation was 30-60 % of a typical file's CPU
// (docs/testing.md, "Session 7"), on the two cores the whole suite shares, while the baseline
// compiler (Liftoff) alone runs the same code with the same results, more slowly per query. So the
// test processes and the `tillpoint` commands they start (the compiled CLI entry below) run
// WebAssembly on Liftoff only. TEST_WASM_TIERUP=1 keeps V8's default.
const liftoffOnly = process.env.TEST_WASM_TIERUP !== '1';
const wasmFlags = liftoffOnly ? ['--liftoff-only'] : [];
// Node 20's `node --test` sorts the files it is given by path before it starts them, which undid
// the order above (alphabetical, not slowest first). A compiled file's path begins with its place
// in the order (build-<pid>/0007/test/x.test.mjs), so sorting keeps it. Files run from source sort
// after the compiled ones (node_modules/… < src/… < test/…).
const builtName = (f) => `${String(ordered.indexOf(f)).padStart(4, '0')}/${f.replace(/\.[cm]?tsx?$/, '.mjs')}`;
const needsSource = (f) => /\bimport\(\s*[^'"\s)]/.test(readFileSync(f, 'utf8'));
const compiled = useBuild ? ordered.filter((f) => !needsSource(f)) : [];
// Only when a file that starts processes is in the run (a filter for unit tests skips it).
const CLI_ENTRY = 'cli/main';
const withCli = useBuild && startsProcesses;
let buildDir;
if (compiled.length > 0 || withCli) {
  // One directory per run (two runs on one checkout must not delete each other's files); the
  // ones of runs that ended without cleaning up (killed) are removed here. Not under node_modules:
  // Node 22 and later take `--test` arguments as glob patterns, which never match there. Inside the
  // checkout (tmp/ is git-ignored), so the bundles' package imports resolve from node_modules.
  const BUILD_ROOT = 'tmp/test-build';
  mkdirSync(BUILD_ROOT, { recursive: true });
  for (const name of readdirSync(BUILD_ROOT)) {
    const pid = /^build-(\d+)$/.exec(name)?.[1];
    if (pid && !isAlive(Number(pid))) rmSync(join(BUILD_ROOT, name), { recursive: true, force: true });
  }
  buildDir = join(BUILD_ROOT, `build-${process.pid}`);
  const esbuild = await import('esbuild');
  const sourceImportMeta = {
    name: 'source-import-meta',
    setup(b) {
      b.onLoad({ filter: /\.[cm]?[jt]sx?$/ }, (a) => {
        if (a.path.includes('/node_modules/')) return undefined;
        const text = readFileSync(a.path, 'utf8');
        if (!text.includes('import.meta')) return undefined;
        return {
          contents: text
            .replace(/\bimport\.meta\.url\b/g, JSON.stringify(pathToFileURL(a.path).href))
            .replace(/\bimport\.meta\.dirname\b/g, JSON.stringify(dirname(a.path)))
            .replace(/\bimport\.meta\.filename\b/g, JSON.stringify(a.path)),
          loader: /\.[cm]?([jt]sx?)$/.exec(a.path)[1],
        };
      });
    },
  };
  // The command's entry for tests: src/cli/main.ts, after the same WebAssembly setting as the test
  // processes (set at run time, before any code compiles WebAssembly: no node flag reaches a child
  // through NODE_OPTIONS).
  const TEST_CLI_ENTRY = 'tillpoint-test-cli';
  const testCliEntry = {
    name: 'test-cli-entry',
    setup(b) {
      b.onResolve({ filter: /^tillpoint-test-cli$/ }, () => ({ path: TEST_CLI_ENTRY, namespace: 'test-cli' }));
      b.onLoad({ filter: /.*/, namespace: 'test-cli' }, () => ({
        contents: [
          "import v8 from 'node:v8';",
          ...wasmFlags.map((f) => `v8.setFlagsFromString(${JSON.stringify(f)});`),
          `await import(${JSON.stringify(resolve('src/cli/main.ts'))});`,
        ].join('\n'),
        resolveDir: resolve('.'),
        loader: 'js',
      }));
    },
  };
  try {
    await esbuild.build({
      entryPoints: [
        ...compiled.map((f) => ({ in: f, out: builtName(f).replace(/\.mjs$/, '') })),
        ...(withCli ? [{ in: TEST_CLI_ENTRY, out: CLI_ENTRY }] : []),
      ],
      outdir: buildDir,
      outbase: '.',
      outExtension: { '.js': '.mjs' },
      bundle: true,
      splitting: true,
      chunkNames: 'chunks/[name]-[hash]',
      format: 'esm',
      platform: 'node',
      target: 'node20',
      packages: 'external',
      sourcemap: 'linked',
      tsconfig: 'tsconfig.json',
      plugins: [sourceImportMeta, testCliEntry],
      logLevel: 'warning',
    });
  } catch (e) {
    console.error(`compiling the test files failed (TEST_TSX=1 runs them through tsx instead): ${e.message}`);
    process.exit(1);
  }
}
const failures = (await Promise.all(checks)).filter(Boolean);
if (failures.length > 0) {
  if (buildDir) rmSync(buildDir, { recursive: true, force: true });
  for (const f of failures) console.error(f.failed);
  process.exit(failures[0].status);
}
const compiledSet = new Set(compiled);
const runAs = (f) => (compiledSet.has(f) ? join(buildDir, builtName(f)) : f);

// Two files at a time on the 2-core machine. Three (session 7: 367 -> 330 s of run on a shared
// machine) starved the process-heavy files: in the first full run on the merged main the
// production smoke test's terminal did not hear its payment succeed within 60 s, while alone it
// passes in 20 s (docs/testing.md, "Session 7"). TEST_CONCURRENCY=3 tries it.
const concurrency = process.env.TEST_CONCURRENCY ?? '2';
const started = Date.now();
const r = spawnSync(
  process.execPath,
  [
    '--enable-source-maps',
    ...wasmFlags,
    // Node flags for every test process (`node --test` hands its own flags to the files'
    // processes), e.g. TEST_NODE_FLAGS='--cpu-prof --cpu-prof-dir=/tmp/prof' (docs/testing.md).
    ...(process.env.TEST_NODE_FLAGS?.split(/\s+/).filter(Boolean) ?? []),
    '--import',
    './scripts/load-tsx-for-sources.mjs',
    '--import',
    './scripts/file-timer.mjs',
    '--test',
    `--test-concurrency=${concurrency}`,
    ...passFlags,
    ...ordered.map(runAs),
  ],
  {
    stdio: 'inherit',
    env: {
      ...process.env,
      TEST_DURATIONS_FILE: runLog,
      ...(buildDir ? { TEST_BUILD_DIR: resolve(buildDir) } : {}),
      // A route's validator compiles on its first request, in the test processes and the servers
      // they start (src/http/validation.ts; test/security.test.ts compiles all at start).
      TEST_LAZY_SCHEMAS: process.env.TEST_LAZY_SCHEMAS ?? '1',
      // Unset otherwise (TEST_TSX=1: the commands run from source too).
      TEST_TILLPOINT_CLI: withCli ? resolve(buildDir, `${CLI_ENTRY}.mjs`) : undefined,
    },
  },
);
if (buildDir) rmSync(buildDir, { recursive: true, force: true });

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
