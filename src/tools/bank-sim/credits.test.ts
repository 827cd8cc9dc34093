import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fixedClock } from '../../platform/clock.ts';
import { createSimCredits } from './credits.ts';
import { SimError } from './engine.ts';

// The simulated bank's push credits (credits.ts): idempotent on credit_ref, the magic VPAs, and
// status queries. Over HTTP in both formats: test/settlement.compensation.e2e.test.ts.

const credit = (ref: string, vpa = 'ravi.kumar@okaxis', amount = '100.00') => ({
  credit_ref: ref,
  payee_vpa: vpa,
  amount,
  currency: 'INR',
  note: 'compensation',
});

test('a push credit is paid once per credit_ref; the same again answers the same; other details are refused', () => {
  const c = createSimCredits({ clock: fixedClock('2026-12-03T06:00:00Z') });
  const first = c.credit(credit('CP1'));
  assert.equal(first.response_code, '00');
  assert.ok(first.bank_ref);
  assert.deepEqual(c.credit(credit('CP1')), first);
  assert.throws(
    () => c.credit(credit('CP1', 'ravi.kumar@okaxis', '200.00')),
    (e: unknown) => e instanceof SimError && e.status === 409,
  );
  assert.deepEqual([...c.paid()], [['CP1', 10_000]]);
  assert.equal(c.status({ credit_ref: 'CP1' }).response_code, '00');
  assert.equal(c.status({ credit_ref: 'CP2' }).response_code, 'U48');
});

test('refused to a closed account (U31); pending once, then paid; bad requests are 400', () => {
  const c = createSimCredits({ clock: fixedClock('2026-12-03T06:00:00Z') });
  assert.equal(c.credit(credit('CPX', 'sim-nocredit.asha@okaxis')).response_code, 'U31');
  assert.equal(c.status({ credit_ref: 'CPX' }).response_code, 'U31');
  assert.equal(c.credit(credit('CPP', 'sim-creditpending.asha@okaxis')).response_code, '01');
  assert.equal(c.status({ credit_ref: 'CPP' }).response_code, '01');
  assert.equal(c.status({ credit_ref: 'CPP' }).response_code, '00');
  assert.deepEqual([...c.paid().keys()], ['CPP']);
  for (const bad of [
    credit('CP 1'),
    credit('CP3', 'not-a-vpa'),
    credit('CP4', 'ravi@okaxis', '1.001'),
    credit('CP5', 'ravi@okaxis', '0.00'),
    { ...credit('CP6'), currency: 'USD' },
  ])
    assert.throws(
      () => c.credit(bad),
      (e: unknown) => e instanceof SimError && e.status === 400,
    );
});
