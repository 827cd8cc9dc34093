import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createInterface } from 'node:readline';
import { Readable } from 'node:stream';
import { writeSettlementFile, type SettlementRecord } from '../../../tools/bank-sim/index.ts';
import { physicalLines } from './ingest.ts';
import { createParser, loadMappings, MappingError, newLineBatch, splitCsv, validateMapping } from './mapping.ts';
import { loadRules, validateRules } from './rules.ts';

// The shipped mappings read the simulator's files exactly; bad mappings and rules are refused, named.

const mappings = loadMappings();
const at = new Date('2026-12-03T05:00:00Z'); // 10:30 IST
const records: SettlementRecord[] = [
  {
    kind: 'payment',
    ref: 'TPAAAA1',
    bankRef: '111111111111',
    amountPaise: 14_900,
    payeeVpa: 'shop@simbank',
    at,
    succeeded: true,
  },
  {
    kind: 'refund',
    ref: 'RFAAAA1',
    bankRef: '222222222222',
    amountPaise: 4_900,
    payeeVpa: 'shop@simbank',
    at,
    succeeded: true,
  },
  {
    kind: 'payment',
    ref: 'TPBBBB1',
    bankRef: '333333333333',
    amountPaise: 20_000,
    payeeVpa: 'shop@simbank2',
    at,
    succeeded: true,
  },
  {
    kind: 'payment',
    ref: 'TPBBBB2',
    bankRef: '444444444444',
    amountPaise: 7_000,
    payeeVpa: 'shop@simbank2',
    at,
    succeeded: false,
  },
];

function parseAll(bank: string, content: string) {
  const p = createParser(mappings.get(bank)!);
  return content
    .split('\n')
    .filter((l, i, a) => i < a.length - 1 || l !== '')
    .map((l, i) => p.feed(l, i + 1));
}

test('both shipped mappings load, and read the simulator files they describe', () => {
  assert.deepEqual([...mappings.keys()].sort(), ['SIMBANK', 'SIMBANK2']);
  const csv = writeSettlementFile(records, { bank: 'SIMBANK', cycleKey: '2026-12-03-C2' });
  const rows = parseAll('SIMBANK', csv.content);
  assert.deepEqual(
    rows.map((r) => r.kind),
    ['header', 'line', 'line', 'skip'],
  );
  const lines = rows.flatMap((r) => (r.kind === 'line' ? [r.line] : []));
  assert.deepEqual(
    lines.map((l) => [l.txnRef, l.direction, l.amountPaise, l.txnAt?.toISOString()]),
    [
      ['TPAAAA1', 'credit', 14_900, at.toISOString()],
      ['RFAAAA1', 'debit', 4_900, at.toISOString()],
    ],
  );
  const fw = writeSettlementFile(records, {
    bank: 'SIMBANK2',
    cycleKey: '2026-12-03-C2',
    discrepancies: { late_success: 1, amount_off: 1 },
  });
  assert.deepEqual(fw.applied.late_success, ['TPBBBB2']);
  const p2 = createParser(mappings.get('SIMBANK2')!);
  const out = fw.content
    .trimEnd()
    .split('\n')
    .map((l, i) => p2.feed(l, i + 1));
  assert.equal(p2.cycleFromFirstLine(), '2026-12-03-C2');
  const fwLines = out.flatMap((r) => (r.kind === 'line' ? [r.line] : []));
  assert.deepEqual(
    fwLines.map((l) => [l.txnRef, l.amountPaise]),
    [
      ['TPBBBB1', 20_001],
      ['TPBBBB2', 7_000],
    ],
  );
  assert.equal(out.at(-1)!.kind, 'skip'); // the trailer
});

test('CSV fields: quotes, doubled quotes, empty fields; broken quotes are refused', () => {
  assert.deepEqual(splitCsv('a,"b,c","d""e",', ',', '"'), ['a', 'b,c', 'd"e', '']);
  assert.deepEqual(splitCsv('a,,b', ',', '"'), ['a', '', 'b']);
  assert.equal(splitCsv('a,"b', ',', '"'), undefined);
  assert.equal(splitCsv('a,"b"c', ',', '"'), undefined);
  assert.equal(splitCsv('a,b"c', ',', '"'), undefined);
});

test('a mapping or a rule set that cannot work is refused, with what is wrong', () => {
  const good = structuredClone(mappings.get('SIMBANK')!);
  assert.throws(() => validateMapping({ ...good, kind: 'xml' }), MappingError);
  assert.throws(
    () => validateMapping({ ...good, amount: { unit: 'rupees', sign: 'direction_column' } }),
    /credit_values/,
  );
  assert.throws(() => validateMapping({ ...good, cycle: { ...good.cycle, pattern: '(\\d{8})' } }), /named groups/);
  assert.throws(() => validateMapping({ ...good, datetime: { format: 'HH:mm', time_zone: 'Asia/Kolkata' } }), /YYYY/);
  assert.throws(
    () => validateMapping({ ...good, datetime: { ...good.datetime, time_zone: 'Mars/Olympus' } }),
    /time zone/,
  );
  assert.throws(
    () => validateMapping({ ...good, columns: { ...good.columns, amount: { start: 1, length: 5 } } }),
    /not a csv column/,
  );
  const rules = loadRules();
  assert.throws(() => validateRules({ ...rules, rules: [...rules.rules, rules.rules[0]] }), /twice/);
  assert.throws(
    () => validateRules({ ...rules, rules: [{ ...rules.rules[0], when: [{ amount_within: {} }] }] }),
    /paise or bps/,
  );
  assert.throws(() => validateRules({ ...rules, rules: [{ ...rules.rules[0], strategy: 'many_to_one' }] }), /group_by/);
});

test('lines are split as readline splits them: LF, CRLF, a lone CR, across chunks, UTF-8 cut in two', async () => {
  const collect = async (chunks: Buffer[]) => {
    const out: string[] = [];
    for await (const lines of physicalLines(Readable.from(chunks))) out.push(...lines);
    return out;
  };
  const viaReadline = async (chunks: Buffer[]) => {
    const out: string[] = [];
    for await (const l of createInterface({ input: Readable.from(chunks), crlfDelay: Number.POSITIVE_INFINITY }))
      out.push(l);
    return out;
  };
  assert.deepEqual(await collect([Buffer.from('a\r'), Buffer.from('\nb\rc\n'), Buffer.from('\n'), Buffer.from('d')]), [
    'a',
    'b',
    'c',
    '',
    'd',
  ]);
  // Random texts of a few letters, a multi-byte letter and line breaks, cut at random bytes.
  let seed = 7;
  const rand = (n: number) => {
    seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31;
    return seed % n;
  };
  const alphabet = ['a', 'b', 'é', '₹', '\r', '\n', '\r\n', ' '];
  for (let round = 0; round < 300; round++) {
    const text = Array.from({ length: rand(40) }, () => alphabet[rand(alphabet.length)]).join('');
    const bytes = Buffer.from(text);
    const chunks: Buffer[] = [];
    for (let i = 0; i < bytes.length; ) {
      const n = 1 + rand(6);
      chunks.push(bytes.subarray(i, i + n));
      i += n;
    }
    assert.deepEqual(await collect(chunks), await viaReadline(chunks), JSON.stringify(text));
  }
});

test('amounts and times: the edges of the formats, and feedInto agrees with feed', () => {
  const m = mappings.get('SIMBANK')!;
  const row = (amount: string, time = '03-12-2026 10:30:00', dc = 'CR') =>
    `TP1,123456789012,${amount},${dc},${time},UPI`;
  const header = 'TXN_REF,RRN,AMOUNT,DR_CR,TXN_DATE,NARRATION';
  const one = (line: string) => {
    const p = createParser(m);
    p.feed(header, 1);
    return p.feed(line, 2);
  };
  const paise = (line: string) => {
    const r = one(line);
    return r.kind === 'line' ? r.line.amountPaise : r.kind === 'problem' ? r.message : r.kind;
  };
  assert.equal(paise(row('1.5')), 150);
  assert.equal(paise(row('1.05')), 105);
  assert.equal(paise(row('149')), 14_900);
  assert.equal(paise(row('1.')), 'amount is not a valid amount');
  assert.equal(paise(row('1.234')), 'amount is not a valid amount');
  assert.equal(paise(row('+1.00')), 'amount is not a valid amount');
  assert.equal(paise(row('12345678901234')), 'amount is not a valid amount');
  assert.equal(paise(row('0.00')), 'amount must be above zero');
  assert.equal(paise(row('-1.00')), 'a negative amount beside a debit/credit column');
  assert.equal(paise(row('')), 'amount is missing');
  const time = (t: string) => {
    const r = one(row('1.00', t));
    return r.kind === 'line' ? r.line.txnAt?.toISOString() : r.kind === 'problem' ? r.message : r.kind;
  };
  assert.equal(time('03-12-2026 10:30:00'), '2026-12-03T05:00:00.000Z');
  assert.equal(time('29-02-2028 00:00:00'), '2028-02-28T18:30:00.000Z');
  for (const bad of [
    '29-02-2026 00:00:00',
    '31-04-2026 10:00:00',
    '03-13-2026 10:00:00',
    '03-12-2026 24:00:00',
    '3-12-2026 10:30:00',
    '03/12/2026 10:30:00',
    '03-12-2026 10:30:0x',
  ])
    assert.equal(time(bad), 'transaction time does not match "DD-MM-YYYY HH:mm:ss"', bad);
  assert.equal(one('\u00a0 ').kind, 'skip'); // blank, though not in ASCII
  // The batch path gives the same fields as the object path.
  const p = createParser(m);
  const b = newLineBatch();
  p.feedInto(header, 1, b);
  p.feedInto(row('7.25', '01-12-2026 23:59:59', 'DR'), 2, b);
  const r = one(row('7.25', '01-12-2026 23:59:59', 'DR'));
  assert.equal(r.kind, 'line');
  if (r.kind === 'line')
    assert.deepEqual(
      [b.lineNo[0], b.direction[0], b.txnRef[0], b.bankRef[0], b.reference[0], b.amountPaise[0], b.txnAtMs[0]],
      [
        2,
        r.line.direction,
        r.line.txnRef,
        r.line.bankRef,
        r.line.reference,
        r.line.amountPaise,
        r.line.txnAt?.getTime(),
      ],
    );
});
