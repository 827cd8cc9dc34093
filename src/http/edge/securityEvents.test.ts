import { test } from 'node:test';
import assert from 'node:assert/strict';
import { appendFileSync, mkdtempSync, renameSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { eventFromAuditLine, followLines } from './securityEvents.ts';

// One entry in ModSecurity v3's JSON audit-log format (SecAuditLogFormat JSON, parts AHZ), as
// libmodsecurity 3.0.9 writes it: a block by the anomaly score, with a libinjection match that
// carries no tags (3.0.9 leaves them empty) and a request value in `data`.
function auditLine(opts: { code: number; value: string; withBlock: boolean }) {
  const messages = [
    {
      message: 'SQL Injection Attack Detected via libinjection',
      details: {
        match: 'detected SQLi using libinjection.',
        ruleId: '942100',
        data: `Matched Data: s&1c found within ARGS:json.note: ${opts.value}`,
        severity: '2',
        tags: [],
      },
    },
    ...(opts.withBlock
      ? [
          {
            message: 'Inbound Anomaly Score Exceeded (Total Score: 10)',
            details: {
              match: "Matched \"Operator `Ge' with parameter `5' against variable `TX:ANOMALY_SCORE' (Value: `10' )",
              ruleId: '949110',
              severity: '2',
              tags: ['attack-generic'],
            },
          },
        ]
      : []),
  ];
  return JSON.stringify({
    transaction: {
      client_ip: '203.0.113.9',
      time_stamp: 'Wed Nov 25 20:57:06 2026',
      unique_id: 'req_0123456789abcdef0123456789abcdef',
      request: { method: 'POST', http_version: 1.1, uri: '/v1/payments?payer_vpa=ravi.kumar%40okaxis' },
      response: { http_code: opts.code },
      messages,
    },
  });
}

test('a blocked request becomes a "blocked" event under its request id, with rule ids and places but no values', () => {
  const e = eventFromAuditLine(auditLine({ code: 460, value: "ravi.kumar@okaxis' OR 1=1--", withBlock: true }))!;
  assert.equal(e.id, 'req_0123456789abcdef0123456789abcdef');
  assert.equal(e.action, 'blocked');
  assert.equal(e.status, 403, 'the status the client saw, not the private one');
  assert.equal(e.category, 'sqli', 'from the rule id when ModSecurity gives no tags');
  assert.equal(e.anomaly_score, 10);
  assert.deepEqual(
    e.rules.map((r) => r.id),
    ['942100'],
    'the blocking evaluation is not a detection',
  );
  assert.deepEqual(e.rules[0].targets, ['ARGS:json.note']);
  assert.equal(e.path, '/v1/payments', 'no query string');
  assert.equal(e.client_ip, '203.0.113.9');
  assert.ok(!JSON.stringify(e).includes('okaxis'), 'no matched value, no query value');
  assert.ok(!Number.isNaN(Date.parse(e.at)));
});

test('a rule match below the threshold is "detected"; lines that are not entries are skipped', () => {
  const e = eventFromAuditLine(auditLine({ code: 200, value: 'x', withBlock: false }))!;
  assert.equal(e.action, 'detected');
  assert.equal(e.status, 200);
  assert.equal(eventFromAuditLine('not json'), null);
  assert.equal(eventFromAuditLine(JSON.stringify({ transaction: { messages: [] } })), null);
});

test('followLines: new complete lines only, split writes joined, rotation read from the start', () => {
  const dir = mkdtempSync(join(tmpdir(), 'tp-follow-'));
  const file = join(dir, 'log');
  writeFileSync(file, 'old 1\nold 2\n');
  const seen: string[] = [];
  const f = followLines(file, (l) => seen.push(l), { startAt: 'end', intervalMs: 60_000 });
  appendFileSync(file, 'new 1\nnew 2 part');
  f.poll();
  assert.deepEqual(seen, ['new 1']);
  appendFileSync(file, ' two\n');
  f.poll();
  assert.deepEqual(seen, ['new 1', 'new 2 part two']);
  renameSync(file, file + '.1');
  writeFileSync(file, 'rotated 1\n');
  f.poll();
  assert.deepEqual(seen.slice(2), ['rotated 1']);
  f.stop();
});
