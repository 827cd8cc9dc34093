import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeSettlementFile, type SettlementRecord } from '../../../tools/bank-sim/index.ts';
import { createParser, loadMappings, MappingError, splitCsv, validateMapping } from './mapping.ts';
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
