// Summarises a V8 .cpuprofile (from `node --cpu-prof`, e.g. `npm run bench:payments -- --cpu-prof DIR`)
// as text: where the time went by package / source file (self time), and the heaviest functions by
// self and by inclusive time. Usage:
//
//   node --import tsx bench/profile-summary.ts <file.cpuprofile> [--top N] [--from S] [--to S] [--callers NAME]
//
// --from/--to keep only samples between those seconds of the profile (e.g. the measured window,
// leaving out start-up and TypeScript loading). --callers NAME adds where the self time of the
// functions named NAME (e.g. writev) comes from: the nearest caller in our code or a package. Open the same file in Chrome DevTools or
// speedscope for a flame graph.

import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
}
interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  children?: number[];
}
interface Profile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    top: { type: 'string', default: '25' },
    from: { type: 'string' },
    to: { type: 'string' },
    callers: { type: 'string' },
  },
});
if (positionals.length !== 1) {
  process.stderr.write(
    'usage: node --import tsx bench/profile-summary.ts <file.cpuprofile> [--top N] [--from S] [--to S] [--callers NAME]\n',
  );
  process.exit(2);
}
const top = Number(values.top);
const prof = JSON.parse(readFileSync(positionals[0], 'utf8')) as Profile;

const byId = new Map(prof.nodes.map((n) => [n.id, n]));
const parent = new Map<number, number>();
for (const n of prof.nodes) for (const c of n.children ?? []) parent.set(c, n.id);

/** Where a frame's code lives: a package, one of our files, Node itself, or a V8 pseudo-frame. */
function place(f: CallFrame): string {
  if (!f.url) return f.functionName.startsWith('(') ? f.functionName : '(native)';
  const nm = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(f.url);
  if (nm) return nm[1];
  if (f.url.startsWith('node:')) return f.url.replace(/^node:internal\/.*$/, 'node:internal');
  const ours = /\/((?:src|bench|bin)\/.*)$/.exec(f.url);
  return ours ? ours[1] : f.url;
}
const fnKey = (f: CallFrame) => `${f.functionName || '(anonymous)'}  ${place(f)}:${f.lineNumber + 1}`;

const from = values.from === undefined ? -Infinity : Number(values.from) * 1e6;
const to = values.to === undefined ? Infinity : Number(values.to) * 1e6;
const self = new Map<string, number>();
const selfPlace = new Map<string, number>();
const incl = new Map<string, number>();
const callers = new Map<string, number>();
/** A frame that says who asked for the work: our code or a package, not Node's internals. */
const telling = (f: CallFrame) => f.url !== '' && !f.url.startsWith('node:');
let t = 0;
let total = 0;
for (let i = 0; i < prof.samples.length; i++) {
  t += prof.timeDeltas[i] ?? 0;
  if (t < from || t > to) continue;
  const dt = prof.timeDeltas[i + 1] ?? 0; // time until the next sample is this sample's weight
  const node = byId.get(prof.samples[i])!;
  if (node.callFrame.functionName === '(idle)') continue;
  total += dt;
  self.set(fnKey(node.callFrame), (self.get(fnKey(node.callFrame)) ?? 0) + dt);
  selfPlace.set(place(node.callFrame), (selfPlace.get(place(node.callFrame)) ?? 0) + dt);
  if (values.callers && node.callFrame.functionName === values.callers) {
    let id = parent.get(node.id);
    while (id !== undefined && !telling(byId.get(id)!.callFrame)) id = parent.get(id);
    const k = id === undefined ? '(none)' : fnKey(byId.get(id)!.callFrame);
    callers.set(k, (callers.get(k) ?? 0) + dt);
  }
  const seen = new Set<string>();
  for (let id: number | undefined = node.id; id !== undefined; id = parent.get(id)) {
    const k = fnKey(byId.get(id)!.callFrame);
    if (seen.has(k)) continue;
    seen.add(k);
    incl.set(k, (incl.get(k) ?? 0) + dt);
  }
}

const ms = (us: number) => (us / 1000).toFixed(0).padStart(7);
const pct = (us: number) => ((us / total) * 100).toFixed(1).padStart(5) + '%';
const out: string[] = [`busy (non-idle) CPU time in the window: ${(total / 1e6).toFixed(2)} s`];
function table(title: string, m: Map<string, number>, n: number) {
  out.push('', title);
  for (const [k, v] of [...m].sort((a, b) => b[1] - a[1]).slice(0, n)) out.push(`${ms(v)} ms ${pct(v)}  ${k}`);
}
table('Self time by package / file', selfPlace, top);
table('Self time by function', self, top);
table('Inclusive time by function', incl, top);
if (values.callers)
  table(`Where the self time of ${values.callers} comes from (nearest caller in our code or a package)`, callers, top);
// One write, so piping into head does not end in EPIPE halfway.
process.stdout.write(out.join('\n') + '\n');
