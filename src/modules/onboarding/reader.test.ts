import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readRecords, type SourceRecord } from './reader.ts';

// The CSV reader gives the same records however the file is cut into chunks (a stream can split
// a "" escape, a CRLF or a multi-byte character anywhere), with each record's first line.

const CSV = 'id,name,note\r\n1,"Caf\u00e9 ""Mocha""","two\nlines"\r\n2,plain,\r\n\r\n3,"a,b",₹149\n4,last,"end"';

async function all(chunks: Buffer[]): Promise<SourceRecord[]> {
  const out: SourceRecord[] = [];
  for await (const r of readRecords(chunks, 'csv')) out.push(r);
  return out;
}

test('records and their lines do not depend on where the chunks are cut', async () => {
  const bytes = Buffer.from(CSV, 'utf8');
  const whole = await all([bytes]);
  assert.deepEqual(
    whole.map((r) => [r.line, r.fields]),
    [
      [2, { id: '1', name: 'Café "Mocha"', note: 'two\nlines' }],
      [4, { id: '2', name: 'plain', note: '' }],
      [6, { id: '3', name: 'a,b', note: '₹149' }],
      [7, { id: '4', name: 'last', note: 'end' }],
    ],
  );
  for (let cut = 1; cut < bytes.length; cut++) {
    assert.deepEqual(await all([bytes.subarray(0, cut), bytes.subarray(cut)]), whole, `cut at byte ${cut}`);
  }
  // One byte at a time, too.
  assert.deepEqual(await all([...bytes].map((b) => Buffer.from([b]))), whole);
});

test('JSON lines: a line number per line, blank lines skipped, CRLF accepted', async () => {
  const out: SourceRecord[] = [];
  for await (const r of readRecords([Buffer.from('{"a":1}\r\n\n{"a":"x"}\n[1]\n')], 'jsonl')) out.push(r);
  assert.deepEqual(
    out.map((r) => [r.line, r.fields, r.problem]),
    [
      [1, { a: 1 }, undefined],
      [3, { a: 'x' }, undefined],
      [4, {}, 'a line must be one JSON object'],
    ],
  );
});
