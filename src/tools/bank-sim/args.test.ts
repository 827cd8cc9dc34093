import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ConfigError } from '../../platform/config.ts';
import { parseBankSimArgs, DEV_SIM_SECRET } from './standalone.ts';
import { parseUpiUri } from './upiUri.ts';

test('parseBankSimArgs: flags, both --x N and --x=N forms, env secret', () => {
  const a = parseBankSimArgs(
    ['--port', '9191', '--host=0.0.0.0', '--latency-ms', '0', '--approve', '0.5', '--decline=0.5'],
    { BANK_SIM_SECRET: 'abc' },
  );
  assert.deepEqual(a, {
    port: 9191,
    host: '0.0.0.0',
    secret: 'abc',
    latencyMs: 0,
    outcomes: { approve: 0.5, decline: 0.5, pending: undefined, timeout: undefined },
    dev: false,
    help: false,
  });
  const d = parseBankSimArgs([], { BANK_SIM_SECRET: 'x' });
  assert.equal(d.port, 9090);
  assert.equal(d.outcomes, undefined);
});

test('parseBankSimArgs: the secret is required unless --dev', () => {
  assert.throws(
    () => parseBankSimArgs([], {}),
    (e: unknown) => e instanceof ConfigError && e.setting === 'BANK_SIM_SECRET',
  );
  assert.equal(parseBankSimArgs(['--dev'], {}).secret, DEV_SIM_SECRET);
  assert.equal(parseBankSimArgs(['--dev'], { BANK_SIM_SECRET: 'real' }).secret, 'real');
});

test('parseBankSimArgs: bad input names the flag', () => {
  const env = { BANK_SIM_SECRET: 'x' };
  const bad: [string[], RegExp][] = [
    [['--port', 'abc'], /--port/],
    [['--port', '70000'], /--port/],
    [['--port'], /--port: needs a value/],
    [['--latency-ms', '-1'], /--latency-ms/],
    [['--approve', 'lots'], /--approve/],
    [['--approve', '0', '--decline', '0'], /all be zero/],
    [['--color'], /--color: unknown option/],
    [['extra'], /unexpected argument/],
  ];
  for (const [argv, re] of bad) assert.throws(() => parseBankSimArgs(argv, env), re, argv.join(' '));
});

test('parseUpiUri reads pa, tr and am, percent-decoded', () => {
  const p = parseUpiUri('upi://pay?pa=corner.store%40simbank&pn=Corner%20Store&tr=TP1&am=149.50&cu=INR');
  assert.equal(p.pa, 'corner.store@simbank');
  assert.equal(p.pn, 'Corner Store');
  assert.equal(p.tr, 'TP1');
  assert.equal(p.amountPaise, 14_950);
  assert.equal(parseUpiUri('upi://pay?pa=a@b').amountPaise, undefined);
  assert.throws(() => parseUpiUri('https://pay?pa=a@b'), /upi:\/\/pay/);
  assert.throws(() => parseUpiUri('upi://pay?pn=x'), /pa/);
  assert.throws(() => parseUpiUri('upi://pay?pa=a@b&am=1.999'), /am/);
  assert.throws(() => parseUpiUri('upi://pay?pa=a@b&tr=1&tr=2'), /twice/);
});
