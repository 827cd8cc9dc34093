import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fixedClock } from '../../platform/clock.ts';
import { createHealthTracker, type Transition } from './health.ts';

const settings = {
  windowSeconds: 60,
  minCalls: 10,
  failureRateToOpen: 0.5,
  openSeconds: 30,
  probeEvery: 4,
  probesToClose: 3,
};

function tracker() {
  const clock = fixedClock('2026-12-03T10:00:00Z');
  const transitions: Transition[] = [];
  const h = createHealthTracker({ clock, settings, onTransition: (t) => transitions.push(t) });
  return { h, clock, transitions };
}

test('customer declines say nothing about the bank: they never open the breaker', () => {
  const { h } = tracker();
  for (let i = 0; i < 100; i++) h.record('A', 'declined', 5);
  assert.equal(h.state('A'), 'closed');
  const s = h.stats('A');
  assert.deepEqual([s.calls, s.ok, s.declined, s.technical, s.successRate], [100, 0, 100, 0, null]);
});

test('opens at the technical failure rate, only once enough calls were seen', () => {
  const { h, transitions } = tracker();
  for (let i = 0; i < 5; i++) h.record('A', 'technical', 1000);
  assert.equal(h.state('A'), 'closed', '5 calls are below minCalls');
  for (let i = 0; i < 4; i++) h.record('A', 'ok', 10);
  assert.equal(h.state('A'), 'closed', '9 calls');
  h.record('A', 'technical', 1000);
  assert.equal(h.state('A'), 'open', '6 of 10 technical');
  assert.deepEqual(
    transitions.map((t) => [t.bank, t.from, t.to, t.stats.technical]),
    [['A', 'closed', 'open', 6]],
  );
  assert.equal(h.admit('A'), false);
  assert.equal(h.state('B'), 'closed', 'per bank');
});

test('below the threshold it stays closed', () => {
  const { h } = tracker();
  for (let i = 0; i < 60; i++) h.record('A', i % 3 === 0 ? 'technical' : 'ok', 10);
  assert.equal(h.state('A'), 'closed');
  assert.equal(Math.round(h.stats('A').successRate! * 100), 67);
});

test('half-open after the open period: a trickle of probes; a failed probe opens it again', () => {
  const { h, clock, transitions } = tracker();
  for (let i = 0; i < 10; i++) h.record('A', 'technical', 1000);
  clock.advance(29_000);
  assert.equal(h.admit('A'), false);
  clock.advance(1_000);
  const admitted = Array.from({ length: 8 }, () => h.admit('A'));
  assert.deepEqual(admitted, [true, false, false, false, true, false, false, false], '1 in probeEvery');
  h.record('A', 'technical', 1000);
  assert.equal(h.state('A'), 'open');
  assert.deepEqual(
    transitions.map((t) => `${t.from}>${t.to}`),
    ['closed>open', 'open>half_open', 'half_open>open'],
  );
});

test('closes after enough ok probes, with the old failures forgotten', () => {
  const { h, clock, transitions } = tracker();
  for (let i = 0; i < 10; i++) h.record('A', 'technical', 1000);
  clock.advance(30_000);
  h.admit('A');
  h.record('A', 'ok', 10);
  h.record('A', 'declined', 10);
  h.record('A', 'ok', 10);
  assert.equal(h.state('A'), 'half_open', 'a decline is no probe result');
  h.record('A', 'ok', 10);
  assert.equal(h.state('A'), 'closed');
  assert.equal(transitions.at(-1)?.to, 'closed');
  assert.equal(h.stats('A').technical, 0);
  // One more failure does not trip it again at once.
  h.record('A', 'technical', 1000);
  assert.equal(h.state('A'), 'closed');
});

test('the window slides: calls older than windowSeconds drop out', () => {
  const { h, clock } = tracker();
  for (let i = 0; i < 5; i++) h.record('A', 'ok', 10);
  clock.advance(30_000);
  for (let i = 0; i < 3; i++) h.record('A', 'technical', 200);
  assert.deepEqual([h.stats('A').ok, h.stats('A').technical], [5, 3]);
  clock.advance(31_000);
  assert.deepEqual([h.stats('A').ok, h.stats('A').technical], [0, 3]);
  assert.equal(h.stats('A').p95Ms, 200);
  clock.advance(60_000);
  assert.equal(h.stats('A').calls, 0);
  assert.equal(h.score('A'), 0.5, 'no data: an even prior');
});
