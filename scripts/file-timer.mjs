// Preloaded into each test file's process by `node scripts/run-tests.mjs`: at exit it appends the
// file's wall time (from process start, so Node's boot and the loading of its code count) and its
// process's CPU time (the figure a loaded machine distorts least; servers a test spawns not
// included) to the file named by TEST_DURATIONS_FILE, one JSON line per test file.
import { appendFileSync } from 'node:fs';
import { relative } from 'node:path';

const out = process.env.TEST_DURATIONS_FILE;
// The runner runs the compiled copy of a test file (TEST_BUILD_DIR/<place in the order>/<path>.mjs):
// the figures are recorded under the source file's name, which is what orders the next run.
const build = process.env.TEST_BUILD_DIR;
const arg = process.argv[1];
const file =
  build && arg?.startsWith(`${build}/`) && arg.endsWith('.test.mjs')
    ? relative(build, arg)
        .replace(/^\d+\//, '')
        .replace(/\.mjs$/, '.ts')
    : arg?.endsWith('.test.ts')
      ? relative(process.cwd(), arg)
      : undefined;
if (out && file) {
  process.on('exit', (code) => {
    const cpu = process.cpuUsage();
    const line = {
      file,
      ms: Math.round(performance.now()),
      cpuMs: Math.round((cpu.user + cpu.system) / 1000),
      code,
    };
    appendFileSync(out, `${JSON.stringify(line)}\n`);
  });
}
