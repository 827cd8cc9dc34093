import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { spawnSync } from 'node:child_process';

// The api process's memory (issue 8: under 300 MB at peak; bench/PROFILE.md, "Memory of the api
// process"). What `serve --role api` loads at start: the static imports reachable from src/app.ts
// (`import type` and `await import()` excluded); code that only the worker or the terminal gateway
// runs, and drivers only some configurations use, load on demand instead. And the V8 setting
// bin/tillpoint.mjs makes, which this Node.js must still know.

const ROOT = join(import.meta.dirname, '..');
const STATIC_IMPORT = /^\s*(?:import|export)\s+(?!type\s)(?:[^;'"]*?\s+from\s+)?'([^']+)'/gm;

/** Every local file and package reachable from `entry` through static, non-type imports. */
function staticGraph(entry: string): { files: Set<string>; packages: Set<string> } {
  const files = new Set<string>();
  const packages = new Set<string>();
  const visit = (file: string) => {
    if (files.has(file)) return;
    files.add(file);
    for (const m of readFileSync(file, 'utf8').matchAll(STATIC_IMPORT)) {
      const spec = m[1];
      if (spec.startsWith('.')) visit(resolve(dirname(file), spec));
      else if (!spec.startsWith('node:'))
        packages.add(spec.startsWith('@') ? spec.split('/').slice(0, 2).join('/') : spec.split('/')[0]);
    }
  };
  visit(join(ROOT, entry));
  return { files, packages };
}

test('the import graph walk sees what it should (a check of the check)', () => {
  const { files, packages } = staticGraph('src/app.ts');
  for (const f of ['src/http/server.ts', 'src/modules/payments/index.ts', 'src/modules/terminals/terminals.routes.ts'])
    assert.ok(files.has(join(ROOT, f)), f);
  for (const p of ['fastify', 'pg', 'prom-client']) assert.ok(packages.has(p), p);
});

test('the api role does not load the worker, the MQTT gateway, or drivers it is not configured for', () => {
  const { files, packages } = staticGraph('src/app.ts');
  const rel = [...files].map((f) => f.slice(ROOT.length + 1));
  // The job loop (worker role) and the terminal gateway with its broker/client and protocol validators.
  for (const f of [
    'src/roles/worker.ts',
    'src/modules/terminals/gateway.ts',
    'src/modules/terminals/broker/embedded.ts',
    'src/modules/terminals/broker/external.ts',
    'src/modules/terminals/protocol/handlers.ts',
  ]) {
    assert.ok(!rel.includes(f), `${f} is loaded by every role; import it where its role starts (src/app.ts)`);
  }
  // aedes/mqtt: terminal gateway only; ioredis: only with REDIS_URL; @peculiar/x509: certificate issuance only;
  // PGlite: only without DATABASE_URL.
  for (const p of ['aedes', 'mqtt', 'ioredis', '@peculiar/x509', 'fast-check', '@electric-sql/pglite']) {
    assert.ok(!packages.has(p), `${p} is loaded by every role; load it where it is used (await import())`);
  }
});

test('bin/tillpoint.mjs sets a V8 flag this Node.js knows (V8 names an unknown one on stderr and ignores it)', () => {
  const env = { ...process.env };
  delete env.NODE_OPTIONS;
  // The command as installed: from source through tsx, not the runner's compiled CLI that the
  // other tests' commands use (TEST_TILLPOINT_CLI, docs/testing.md), so every run starts it once.
  delete env.TEST_TILLPOINT_CLI;
  const r = spawnSync(process.execPath, [join(ROOT, 'bin', 'tillpoint.mjs'), 'help'], {
    cwd: ROOT,
    env,
    encoding: 'utf8',
    timeout: 60_000,
  });
  assert.equal(r.status, 0, r.stderr);
  assert.doesNotMatch(r.stderr, /unrecognized flag/i);
  assert.match(r.stdout, /^tillpoint <command>/);
  assert.match(
    readFileSync(join(ROOT, 'bin', 'tillpoint.mjs'), 'utf8'),
    /setFlagsFromString\('--heap-growing-percent=\d+'\)/,
  );
});
