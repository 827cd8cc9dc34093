import { test } from 'node:test';
import assert from 'node:assert/strict';
import { generate } from 'mqtt-packet';
import fc from 'fast-check';
import { createFrameScanner } from './frameGuard.ts';

// The scanner reads only MQTT's Remaining Length; mqtt-packet (the parser Aedes uses) writes the
// frames here, so the test speaks real MQTT rather than our idea of it.

const publish = (bytes: number) =>
  generate({
    cmd: 'publish',
    topic: 'tillpoint/v1/terminals/trm_0123456789abcdef0123456789abcdef/req',
    payload: Buffer.alloc(bytes, 0x61),
    qos: 1,
    messageId: 7,
    dup: false,
    retain: false,
  });

test('frames within the limit pass, whatever the chunking', () => {
  const frames = Buffer.concat([
    generate({ cmd: 'pingreq' }),
    publish(10),
    publish(1000),
    publish(5000),
    generate({ cmd: 'pingreq' }),
  ]);
  for (const size of [1, 2, 3, 7, 64, frames.length]) {
    const s = createFrameScanner(6000);
    for (let i = 0; i < frames.length; i += size)
      assert.equal(s.push(frames.subarray(i, i + size)), undefined, `chunk size ${size}`);
  }
});

/** Bytes of the fixed header: the type byte and the Remaining Length bytes. */
function headerLength(f: Buffer) {
  let i = 1;
  while (f[i] & 0x80) i++;
  return i + 1;
}

test('a frame above the limit is caught at its header, before its body arrives', () => {
  for (const n of [200, 16_000, 70_000, 2_000_000]) {
    const f = publish(n);
    const h = headerLength(f);
    const announced = f.length - h;
    assert.equal(createFrameScanner(announced - 1).push(f.subarray(0, h)), announced, `payload ${n}`);
    assert.equal(createFrameScanner(announced).push(f), undefined, `payload ${n} at exactly the limit`);
  }
});

test('a fifth length byte is malformed', () => {
  const s = createFrameScanner(Number.MAX_SAFE_INTEGER);
  assert.equal(s.push(Buffer.from([0x30, 0xff, 0xff, 0xff, 0xff, 0x01])), -1);
});

test('random streams of valid frames never trip a generous limit', () => {
  fc.assert(
    fc.property(
      fc.array(fc.integer({ min: 0, max: 3000 }), { maxLength: 20 }),
      fc.integer({ min: 1, max: 500 }),
      (sizes, chunk) => {
        const stream = Buffer.concat(sizes.map(publish));
        const s = createFrameScanner(4000);
        for (let i = 0; i < stream.length; i += chunk)
          if (s.push(stream.subarray(i, i + chunk)) !== undefined) return false;
        return true;
      },
    ),
    { numRuns: 100 },
  );
});
