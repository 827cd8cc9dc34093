// Preloaded into each test file's process by `node scripts/run-tests.mjs --durations`: at exit it
// appends the file's wall time (from process start, so Node's boot and tsx's compile count) and its
// process's CPU time (the figure a loaded machine distorts least; servers a test spawns not
// included) to the file named by TEST_DURATIONS_FILE, one JSON line per test file.
import { appendFileSync } from 'node:fs';
import { relative } from 'node:path';

const out = process.env.TEST_DURATIONS_FILE;
const file = process.argv[1];
if (out && file?.endsWith('.test.ts')) {
  process.on('exit', (code) => {
    const cpu = process.cpuUsage();
    const line = {
      file: relative(process.cwd(), file),
      ms: Math.round(performance.now()),
      cpuMs: Math.round((cpu.user + cpu.system) / 1000),
      code,
    };
    appendFileSync(out, `${JSON.stringify(line)}\n`);
  });
}
