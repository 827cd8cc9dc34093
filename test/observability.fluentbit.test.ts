import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { parse as parseYaml } from 'yaml';
import { createLogger } from '../src/platform/log.ts';

// deploy/observability/fluent-bit: the parser Fluent Bit applies must fit the lines the app's
// logger really writes. Fluent Bit is not packaged in Debian (`apt-cache policy fluent-bit` is
// empty), so it cannot run here (no `fluent-bit --dry-run`); this test reads the classic config
// and applies the parser's documented settings (Format json, Time_Key, Time_Format as strptime
// with Fluent Bit's %L for fractional seconds) to lines from src/platform/log.ts.

const DIR = join(import.meta.dirname, '..', 'deploy', 'observability', 'fluent-bit');
type Section = { name: string; keys: Record<string, string> };

/** Fluent Bit's classic format: [SECTION] headers, `Key value` lines, # comments, @INCLUDE. */
function readClassic(file: string): { sections: Section[]; includes: string[] } {
  const sections: Section[] = [];
  const includes: string[] = [];
  for (const raw of readFileSync(join(DIR, file), 'utf8').split('\n')) {
    const line = raw.trim();
    if (!line || line.startsWith('#')) continue;
    if (line.startsWith('@INCLUDE ')) {
      includes.push(line.slice(9).trim());
      continue;
    }
    const header = /^\[([A-Z]+)\]$/.exec(line);
    if (header) {
      sections.push({ name: header[1], keys: {} });
      continue;
    }
    const kv = /^(\S+)\s+(.+)$/.exec(line);
    assert.ok(kv && sections.length && raw.startsWith('    '), `${file}: cannot read "${raw}"`);
    const key = kv[1].toLowerCase(); // Fluent Bit's keys are case-insensitive
    assert.ok(!(key in sections.at(-1)!.keys), `${file}: ${kv[1]} given twice`);
    sections.at(-1)!.keys[key] = kv[2];
  }
  return { sections, includes };
}

/** strptime for the directives a parser may use here; anything else fails the test. */
function strptime(value: string, format: string): number {
  const parts: Record<string, string> = {};
  const order: string[] = [];
  const re = format.replace(/%(.)|([^%]+)/g, (_m, d: string | undefined, lit: string | undefined) => {
    if (lit) return lit.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    const pattern = (
      {
        Y: '(\\d{4})',
        m: '(\\d{2})',
        d: '(\\d{2})',
        H: '(\\d{2})',
        M: '(\\d{2})',
        S: '(\\d{2})',
        L: '(\\d+)',
        z: '(Z|[+-]\\d{2}:?\\d{2})',
      } as Record<string, string>
    )[d!];
    assert.ok(pattern, `Time_Format directive %${d} is not handled by this test`);
    order.push(d!);
    return pattern;
  });
  const m = new RegExp(`^${re}$`).exec(value);
  assert.ok(m, `"${value}" does not match Time_Format ${format}`);
  order.forEach((d, i) => {
    parts[d] = m[i + 1];
  });
  const utc = Date.UTC(
    +parts.Y,
    +parts.m - 1,
    +parts.d,
    +parts.H,
    +parts.M,
    +parts.S,
    parts.L ? Math.floor(Number(`0.${parts.L}`) * 1000) : 0,
  );
  const z = parts.z ?? 'Z';
  const offset = z === 'Z' ? 0 : (z[0] === '-' ? -1 : 1) * (Number(z.slice(1, 3)) * 60 + Number(z.slice(-2)));
  return utc - offset * 60_000;
}

/** Lines as the app writes them, through its own logger (redaction and formatters included). */
async function appLines(): Promise<string[]> {
  let out = '';
  const log = createLogger({
    level: 'debug',
    destination: new Writable({
      write(c, _e, cb) {
        out += String(c);
        cb();
      },
    }) as never,
  });
  log.info({ request_id: 'req-1', route: '/v1/payments', status: 201 }, 'request completed');
  log.child({ request_id: 'req-2' }).warn({ bank: 'simbank' }, 'bank call slow');
  log.error(new Error('bank unreachable\nsecond line'), 'status check failed');
  log.debug({ payer_vpa: 'someone@upi' }, 'redacted field');
  await new Promise((r) => setImmediate(r));
  return out.split('\n').filter(Boolean);
}

const main = readClassic('fluent-bit.conf');
const parsers = readClassic('parsers.conf');
const firehose = readClassic('output-firehose.conf');
const sections = (c: { sections: Section[] }, name: string) => c.sections.filter((s) => s.name === name);

test('the tillpoint_json parser reads every line the app logs: JSON, with `time` in its Time_Format', async () => {
  const [service] = sections(main, 'SERVICE');
  assert.equal(service.keys.parsers_file, 'parsers.conf');
  const parser = sections(parsers, 'PARSER').find((p) => p.keys.name === 'tillpoint_json');
  assert.ok(parser, 'parsers.conf defines tillpoint_json');
  assert.equal(parser.keys.format, 'json');
  assert.equal(parser.keys.time_keep, 'On', 'the record keeps `time` for queries');
  const lines = await appLines();
  assert.equal(lines.length, 4, 'one line per call: a multi-line error message stays one JSON line');
  for (const line of lines) {
    const record: Record<string, unknown> = JSON.parse(line);
    assert.equal(typeof record, 'object');
    const time = record[parser.keys.time_key] as string;
    assert.equal(typeof time, 'string', `Time_Key ${parser.keys.time_key} is in ${line}`);
    const parsed = strptime(time, parser.keys.time_format);
    assert.equal(parsed, Date.parse(time), 'the parser reads the instant the app wrote (milliseconds included)');
    assert.ok(Math.abs(parsed - Date.now()) < 60_000);
    assert.equal(typeof record.level, 'string', 'level is a label (info, warn, …), searchable as written');
    assert.equal(typeof record.msg, 'string');
    assert.equal(record.service, 'tillpoint');
  }
  assert.equal(JSON.parse(lines[0]).request_id, 'req-1');
  assert.doesNotMatch(lines.join('\n'), /someone@upi/, 'PII is redacted before it is shipped');
  // The time format is strict: a line in another format would not be read with its own time.
  assert.throws(() => strptime('1796329155788', parser.keys.time_format));
  assert.throws(() => strptime('2026-12-02 23:15:55', parser.keys.time_format));
});

test('the pipeline: Tillpoint namespace tailed as CRI, Kubernetes metadata, the JSON parser, CloudWatch Logs and Firehose', () => {
  const namespace = parseYaml(
    readFileSync(join(import.meta.dirname, '..', 'deploy', 'k8s', 'base', 'kustomization.yaml'), 'utf8'),
  ).namespace;
  const [input] = sections(main, 'INPUT');
  assert.equal(input.keys.name, 'tail');
  assert.ok(input.keys.path.includes(`_${namespace}_`), `tails the ${namespace} namespace's pods`);
  assert.equal(input.keys['multiline.parser'], 'cri', 'EKS (containerd) writes CRI-framed lines');
  const filters = sections(main, 'FILTER');
  assert.deepEqual(
    filters.map((f) => f.keys.name),
    ['kubernetes', 'parser'],
    'metadata first, then the app JSON',
  );
  const defined = new Set(sections(parsers, 'PARSER').map((p) => p.keys.name));
  for (const f of filters.filter((f) => f.keys.parser))
    assert.ok(defined.has(f.keys.parser), `parser ${f.keys.parser} is defined`);
  assert.equal(filters[1].keys.key_name, 'log', 'the cri parser puts the line in `log`');
  assert.equal(filters[1].keys.reserve_data, 'On', 'the Kubernetes metadata stays');
  const tag = input.keys.tag.replace('*', '');
  const outputs = [...sections(main, 'OUTPUT'), ...sections(firehose, 'OUTPUT')];
  assert.deepEqual(
    outputs.map((o) => o.keys.name),
    ['cloudwatch_logs', 'kinesis_firehose'],
  );
  for (const o of [...filters, ...outputs])
    assert.ok(o.keys.match.replace('*', '') === tag, `${o.keys.name} matches the input's tag`);
  assert.equal(
    outputs[0].keys.auto_create_group,
    'Off',
    'the log group is created with its retention and KMS key, not by the shipper',
  );
  assert.ok(outputs[1].keys.delivery_stream);
  assert.deepEqual(main.includes, [], 'Firehose is opt-in');
  // Every environment variable the config reads is documented.
  const readme = readFileSync(join(DIR, 'README.md'), 'utf8');
  const vars = new Set(
    [
      ...readFileSync(join(DIR, 'fluent-bit.conf'), 'utf8').matchAll(/\$\{(\w+)\}/g),
      ...readFileSync(join(DIR, 'output-firehose.conf'), 'utf8').matchAll(/\$\{(\w+)\}/g),
    ].map((m) => m[1]),
  );
  assert.ok(vars.size >= 3);
  for (const v of vars) assert.ok(readme.includes(v), `README documents ${v}`);
});
