import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  computeEarn,
  normalizeRule,
  normalizeConditions,
  localTime,
  roundPoints,
  type EarnContext,
  type EarnRate,
  type EarnRule,
} from './rules.ts';

// The earn rules as pure functions: each rule kind, each rounding mode, caps and the budget.

const rate = (earn_points: number, earn_per_paise: number, rounding: EarnRate['rounding'] = 'down'): EarnRate => ({
  earn_points,
  earn_per_paise,
  rounding,
});
// 2026-03-02 is a Monday; 06:30Z is 12:00 in Kolkata (UTC+05:30).
const ctx = (over: Partial<EarnContext> = {}): EarnContext => ({
  amount: 10_000,
  mcc: '5411',
  storeId: 'sto_' + 'a'.repeat(32),
  at: new Date('2026-03-02T06:30:00Z'),
  timezone: 'Asia/Kolkata',
  earnedToday: 0,
  budgetLeft: null,
  ...over,
});
let n = 0;
const rule = (kind: EarnRule['kind'], value: number, conditions: EarnRule['conditions'] = {}): EarnRule => ({
  id: `rul_${n++}`,
  kind,
  value,
  conditions,
});
const ONE_PER_10 = rate(1, 1000);

describe('base rate and rounding', () => {
  test('1 point per full ₹10, rounded down', () => {
    assert.equal(computeEarn(ONE_PER_10, [], ctx({ amount: 999 })).points, 0);
    assert.equal(computeEarn(ONE_PER_10, [], ctx({ amount: 1000 })).points, 1);
    assert.equal(computeEarn(ONE_PER_10, [], ctx({ amount: 14_999 })).points, 14);
    assert.equal(computeEarn(ONE_PER_10, [], ctx({ amount: 15_000 })).points, 15);
  });

  test('nearest rounds half up; up rounds any fraction up', () => {
    assert.equal(computeEarn(rate(1, 1000, 'nearest'), [], ctx({ amount: 1_499 })).points, 1);
    assert.equal(computeEarn(rate(1, 1000, 'nearest'), [], ctx({ amount: 1_500 })).points, 2);
    assert.equal(computeEarn(rate(1, 1000, 'up'), [], ctx({ amount: 1_001 })).points, 2);
    assert.equal(computeEarn(rate(1, 1000, 'up'), [], ctx({ amount: 1_000 })).points, 1);
    assert.equal(computeEarn(rate(1, 1000, 'up'), [], ctx({ amount: 1 })).points, 1);
  });

  test('a zero earn rate earns nothing', () => {
    assert.equal(computeEarn(rate(0, 100), [], ctx()).points, 0);
  });

  test('rounding matches the exact fraction for any integers (property)', () => {
    fc.assert(
      fc.property(fc.bigInt({ min: 0n, max: 10n ** 18n }), fc.bigInt({ min: 1n, max: 10n ** 12n }), (num, den) => {
        const down = roundPoints(num, den, 'down');
        const up = roundPoints(num, den, 'up');
        const near = roundPoints(num, den, 'nearest');
        assert.ok(down * den <= num && num < (down + 1n) * den);
        assert.equal(up, num % den === 0n ? down : down + 1n);
        assert.equal(near, 2n * (num % den) >= den ? down + 1n : down);
      }),
    );
  });
});

describe('multipliers', () => {
  test('by MCC', () => {
    const rules = [rule('multiplier', 20_000, { mcc: ['5812'] })];
    assert.equal(computeEarn(ONE_PER_10, rules, ctx({ mcc: '5411' })).points, 10);
    assert.equal(computeEarn(ONE_PER_10, rules, ctx({ mcc: '5812' })).points, 20);
    assert.equal(computeEarn(ONE_PER_10, rules, ctx({ mcc: null })).points, 10, 'unknown MCC: the rule does not apply');
  });

  test('by store', () => {
    const store = 'sto_' + 'b'.repeat(32);
    const rules = [rule('multiplier', 15_000, { store_ids: [store] })];
    assert.equal(computeEarn(ONE_PER_10, rules, ctx({ storeId: store, amount: 10_000 })).points, 15);
    assert.equal(computeEarn(ONE_PER_10, rules, ctx()).points, 10);
  });

  test('by time window and weekday, in the program timezone', () => {
    const happyHour = [
      rule('multiplier', 30_000, { days_of_week: [1, 2, 3, 4, 5], time_from: '11:00', time_to: '13:00' }),
    ];
    assert.equal(computeEarn(ONE_PER_10, happyHour, ctx()).points, 30, 'Monday 12:00 IST');
    assert.equal(
      computeEarn(ONE_PER_10, happyHour, ctx({ at: new Date('2026-03-02T07:30:00Z') })).points,
      10,
      '13:00 IST: the end is exclusive',
    );
    assert.equal(
      computeEarn(ONE_PER_10, happyHour, ctx({ at: new Date('2026-03-02T05:30:00Z') })).points,
      30,
      '11:00 IST: the start is inclusive',
    );
    assert.equal(
      computeEarn(ONE_PER_10, happyHour, ctx({ at: new Date('2026-03-07T06:30:00Z') })).points,
      10,
      'Saturday',
    );
    assert.equal(
      computeEarn(ONE_PER_10, happyHour, ctx({ timezone: 'UTC' })).points,
      10,
      '06:30 in UTC is outside the window',
    );
    const lateNight = [rule('multiplier', 20_000, { time_from: '22:00', time_to: '02:00' })];
    assert.equal(
      computeEarn(ONE_PER_10, lateNight, ctx({ at: new Date('2026-03-02T17:00:00Z') })).points,
      20,
      '22:30 IST',
    );
    assert.equal(
      computeEarn(ONE_PER_10, lateNight, ctx({ at: new Date('2026-03-02T20:00:00Z') })).points,
      20,
      '01:30 IST',
    );
    assert.equal(
      computeEarn(ONE_PER_10, lateNight, ctx({ at: new Date('2026-03-02T21:00:00Z') })).points,
      10,
      '02:30 IST',
    );
  });

  test('by campaign dates: start inclusive, end exclusive', () => {
    const diwali = [
      rule('multiplier', 50_000, { starts_at: '2026-03-02T00:00:00+05:30', ends_at: '2026-03-03T00:00:00+05:30' }),
    ];
    assert.equal(computeEarn(ONE_PER_10, diwali, ctx()).points, 50);
    assert.equal(computeEarn(ONE_PER_10, diwali, ctx({ at: new Date('2026-03-01T18:30:00Z') })).points, 50);
    assert.equal(computeEarn(ONE_PER_10, diwali, ctx({ at: new Date('2026-03-02T18:30:00Z') })).points, 10);
    assert.equal(computeEarn(ONE_PER_10, diwali, ctx({ at: new Date('2026-03-01T18:29:59Z') })).points, 10);
  });

  test('matching multipliers stack by multiplying, and the result is rounded once', () => {
    const rules = [
      rule('multiplier', 15_000),
      rule('multiplier', 15_000, { mcc: ['5411'] }),
      rule('multiplier', 90_000, { mcc: ['0000'] }),
    ];
    // ₹15: 1.5 × 1.5 × 1.5 points = 3.375 -> 3 (not 1 × 1.5 × 1.5 rounded twice)
    const b = computeEarn(ONE_PER_10, rules, ctx({ amount: 1_500 }));
    assert.equal(b.points, 3);
    assert.equal(b.multipliers.length, 2);
  });

  test('all conditions of a rule must hold', () => {
    const rules = [rule('multiplier', 20_000, { mcc: ['5411'], days_of_week: [6, 7] })];
    assert.equal(computeEarn(ONE_PER_10, rules, ctx()).points, 10, 'right MCC, wrong day');
    assert.equal(computeEarn(ONE_PER_10, rules, ctx({ at: new Date('2026-03-07T06:30:00Z') })).points, 20);
  });
});

describe('minimum spend, caps and budget', () => {
  test('below the minimum spend nothing is earned; the highest matching minimum counts', () => {
    const rules = [rule('minimum_spend', 5_000), rule('minimum_spend', 20_000, { mcc: ['5812'] })];
    assert.equal(computeEarn(ONE_PER_10, rules, ctx({ amount: 4_999 })).points, 0);
    assert.equal(computeEarn(ONE_PER_10, rules, ctx({ amount: 5_000 })).points, 5);
    assert.equal(computeEarn(ONE_PER_10, rules, ctx({ amount: 19_999, mcc: '5812' })).points, 0);
    assert.equal(computeEarn(ONE_PER_10, rules, ctx({ amount: 20_000, mcc: '5812' })).points, 20);
  });

  test('cap per transaction: the smallest matching cap', () => {
    const rules = [rule('cap_per_transaction', 50), rule('cap_per_transaction', 30, { mcc: ['5411'] })];
    const b = computeEarn(ONE_PER_10, rules, ctx({ amount: 100_000 }));
    assert.equal(b.uncapped, 100);
    assert.equal(b.points, 30);
    assert.equal(computeEarn(ONE_PER_10, rules, ctx({ amount: 100_000, mcc: '5999' })).points, 50);
  });

  test('cap per customer per day counts what they already earned today', () => {
    const rules = [rule('cap_per_customer_day', 100)];
    assert.equal(computeEarn(ONE_PER_10, rules, ctx({ amount: 100_000, earnedToday: 0 })).points, 100);
    assert.equal(computeEarn(ONE_PER_10, rules, ctx({ amount: 100_000, earnedToday: 70 })).points, 30);
    assert.equal(computeEarn(ONE_PER_10, rules, ctx({ amount: 100_000, earnedToday: 150 })).points, 0);
  });

  test('the budget caps the grant, after the other caps', () => {
    assert.equal(computeEarn(ONE_PER_10, [], ctx({ amount: 100_000, budgetLeft: 40 })).points, 40);
    assert.equal(computeEarn(ONE_PER_10, [], ctx({ amount: 100_000, budgetLeft: 0 })).points, 0);
    assert.equal(
      computeEarn(ONE_PER_10, [rule('cap_per_transaction', 20)], ctx({ amount: 100_000, budgetLeft: 40 })).points,
      20,
    );
  });

  test('a runaway stack of multipliers is bounded, never a float or an overflow', () => {
    const rules = Array.from({ length: 20 }, () => rule('multiplier', 1_000_000));
    const b = computeEarn(rate(1_000_000, 1), rules, ctx({ amount: 10_000_000 }));
    assert.ok(Number.isSafeInteger(b.points));
  });
});

describe('rules are validated data', () => {
  test('each kind takes its own value field', () => {
    assert.deepEqual(normalizeRule({ kind: 'multiplier', multiplier_bp: 20_000 }), {
      kind: 'multiplier',
      value: 20_000,
      conditions: {},
      description: null,
    });
    assert.equal(normalizeRule({ kind: 'minimum_spend', amount_paise: 10_000 }).value, 10_000);
    assert.equal(normalizeRule({ kind: 'cap_per_transaction', points: 0 }).value, 0);
    assert.throws(() => normalizeRule({ kind: 'multiplier', points: 2 }), { code: 'validation_failed' });
    assert.throws(() => normalizeRule({ kind: 'multiplier', multiplier_bp: 1.5 }), { code: 'validation_failed' });
    assert.throws(() => normalizeRule({ kind: 'multiplier', multiplier_bp: 0 }), { code: 'validation_failed' });
    assert.throws(() => normalizeRule({ kind: 'bonus', points: 2 }), { code: 'validation_failed' });
    assert.throws(() => normalizeRule({ kind: 'cap_per_customer_day', points: -1 }), { code: 'validation_failed' });
  });

  test('conditions are checked field by field', () => {
    assert.deepEqual(normalizeConditions({ mcc: ['5411', '5411'], days_of_week: [7, 1] }), {
      mcc: ['5411'],
      days_of_week: [1, 7],
    });
    assert.equal(normalizeConditions({ starts_at: '2026-03-02T00:00:00+05:30' }).starts_at, '2026-03-01T18:30:00.000Z');
    for (const bad of [
      { mcc: ['541'] },
      { mcc: [] },
      { store_ids: ['mer_x'] },
      { days_of_week: [0] },
      { time_from: '10:00' },
      { time_from: '25:00', time_to: '10:00' },
      { time_from: '10:00', time_to: '10:00' },
      { starts_at: 'tomorrow' },
      { starts_at: '2026-03-02T00:00:00Z', ends_at: '2026-03-01T00:00:00Z' },
      { colour: 'red' },
      [],
    ]) {
      assert.throws(() => normalizeConditions(bad), { code: 'validation_failed' }, JSON.stringify(bad));
    }
  });

  test('local time matches Intl for any instant and zone, across DST changes (property)', () => {
    const zones = [
      'Asia/Kolkata',
      'UTC',
      'America/New_York',
      'Europe/London',
      'Australia/Lord_Howe',
      'Asia/Kathmandu',
      'America/St_Johns',
    ];
    const days = ['Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat', 'Sun'];
    fc.assert(
      fc.property(
        fc.integer({ min: Date.parse('2020-01-01T00:00:00Z'), max: Date.parse('2035-12-31T23:59:59Z') }),
        fc.constantFrom(...zones),
        (ms, tz) => {
          const at = new Date(ms);
          const parts: Record<string, string> = {};
          const f = new Intl.DateTimeFormat('en-US', {
            timeZone: tz,
            hourCycle: 'h23',
            weekday: 'short',
            year: 'numeric',
            month: '2-digit',
            day: '2-digit',
            hour: '2-digit',
            minute: '2-digit',
          });
          for (const p of f.formatToParts(at)) parts[p.type] = p.value;
          assert.deepEqual(localTime(at, tz), {
            day: `${parts.year}-${parts.month}-${parts.day}`,
            weekday: days.indexOf(parts.weekday) + 1,
            minute: Number(parts.hour) * 60 + Number(parts.minute),
          });
        },
      ),
      { numRuns: 2000 },
    );
    // Around a DST change, within one minute bucket and across it.
    const ny = (iso: string) => localTime(new Date(iso), 'America/New_York').minute;
    assert.equal(ny('2026-03-08T06:59:30Z'), 1 * 60 + 59);
    assert.equal(ny('2026-03-08T07:00:00Z'), 3 * 60);
  });

  test('local time follows the timezone, day and weekday included', () => {
    assert.deepEqual(localTime(new Date('2026-03-01T19:00:00Z'), 'Asia/Kolkata'), {
      day: '2026-03-02',
      weekday: 1,
      minute: 30,
    });
    assert.deepEqual(localTime(new Date('2026-03-01T19:00:00Z'), 'UTC'), {
      day: '2026-03-01',
      weekday: 7,
      minute: 19 * 60,
    });
  });
});
