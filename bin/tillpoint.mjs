#!/usr/bin/env node
// Entry point of the `tillpoint` command. TypeScript runs through tsx's loader, so there is no
// build step between a checkout and a running platform.
import { pathToFileURL } from 'node:url';
import v8 from 'node:v8';

// How far V8 lets the old generation grow before the next full collection. V8 derives it from the
// memory it sees: with 4 GB or more (no container limit) it allows up to 4x what survived the last
// full GC, so the api's ~40 MB of live objects reached ~150 MB of heap before being collected (the
// larger part of its 310-370 MB peak; bench/PROFILE.md, "Memory of the api process"). Here a full
// GC comes when the old generation has grown by 85 %: at ~1,200 payments/s the api peaked at
// 260-280 MB, against 278-295 MB when it doubled, with no throughput lost that the runs could show
// (bench/PROFILE.md, "Session 13").
// V8 reads this flag whenever it sets the next limit, so setting it before any application code
// applies to the whole process. (--max-old-space-size and --max-semi-space-size cannot be set from
// here: V8 reads them once, when the heap is made; pass those in NODE_OPTIONS.) Heap flags given to
// node by the operator take precedence over this default.
const HEAP_FLAG = /^--(?:max[-_]old[-_]space[-_]size|max[-_]heap[-_]size|heap[-_]growing[-_]percent)\b/;
if (![...process.execArgv, ...(process.env.NODE_OPTIONS ?? '').split(/\s+/)].some((a) => HEAP_FLAG.test(a))) {
  v8.setFlagsFromString('--heap-growing-percent=85');
}

// `serve` in a role that answers HTTP builds the operator console first when its sources changed
// (console/build.mjs: a hash check, milliseconds when nothing changed). A failed build does not
// stop the platform: /console then says it is not built.
const args = process.argv.slice(2);
const roleArg = args.find((a, i) => a.startsWith('--role=') || args[i - 1] === '--role');
const role = roleArg?.startsWith('--role=') ? roleArg.slice(7) : (roleArg ?? 'all');
if (args[0] === 'serve' && (role === 'all' || role === 'api') && process.env.TILLPOINT_CONSOLE_BUILD !== 'off') {
  try {
    const { ensureConsoleBuilt } = await import('../console/build.mjs');
    await ensureConsoleBuilt();
  } catch (err) {
    process.stderr.write(
      `WARNING: the operator console could not be built (${err?.message ?? err}); /console will say so\n`,
    );
  }
}

// The test runner (scripts/run-tests.mjs) compiles src/cli/main.ts with the test files and names
// the result in TEST_TILLPOINT_CLI, so a `tillpoint` a test starts is a plain Node start instead of
// tsx resolving and loading the whole import graph again (about 1 s of CPU each; docs/testing.md).
// The same code, compiled by the same esbuild step that compiles the tests; everyone else runs
// from source.
const testCli = process.env.TEST_TILLPOINT_CLI;
if (testCli) {
  await import(pathToFileURL(testCli).href);
} else {
  const { register } = await import('tsx/esm/api');
  register();
  await import('../src/cli/main.ts');
}
