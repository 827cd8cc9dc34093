import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  mayPublish,
  maySubscribe,
  mayReceive,
  terminalOfRequestTopic,
  requestTopic,
  responseTopic,
  eventTopic,
  sharedRequestFilter,
  statusTopic,
  terminalOfStatusTopic,
  isTerminalId,
} from './topics.ts';

const A = 'trm_0123456789abcdef0123456789abcdef';
const B = 'trm_fedcba9876543210fedcba9876543210';

test('a terminal publishes only to its own request and status topics', () => {
  assert.equal(mayPublish(A, requestTopic(A)), true);
  assert.equal(mayPublish(A, statusTopic(A)), true);
  for (const t of [
    requestTopic(B),
    statusTopic(B),
    'tillpoint/v1/terminals/+/status',
    `${statusTopic(A)}/x`,
    responseTopic(A),
    eventTopic(A),
    'tillpoint/v1/terminals/+/req',
    'tillpoint/v1/terminals/#',
    `${requestTopic(A)}/x`,
    `/${requestTopic(A)}`,
    '$SYS/broker/x',
    '',
  ]) {
    assert.equal(mayPublish(A, t), false, t);
  }
});

test('a terminal subscribes only to its own /res and /evt, never with wildcards', () => {
  assert.equal(maySubscribe(A, responseTopic(A)), true);
  assert.equal(maySubscribe(A, eventTopic(A)), true);
  for (const f of [
    requestTopic(A),
    statusTopic(A),
    eventTopic(B),
    responseTopic(B),
    'tillpoint/v1/terminals/+/evt',
    `tillpoint/v1/terminals/${A}/#`,
    `tillpoint/v1/terminals/${A}/+`,
    '#',
    '+/+/+/+/+',
    `$share/x/${eventTopic(A)}`,
  ]) {
    assert.equal(maySubscribe(A, f), false, f);
  }
  assert.equal(mayReceive(A, eventTopic(A)), true);
  assert.equal(mayReceive(A, eventTopic(B)), false);
});

test('request topics name their terminal; anything else names none', () => {
  assert.equal(terminalOfRequestTopic(requestTopic(A)), A);
  assert.equal(terminalOfRequestTopic(responseTopic(A)), undefined);
  assert.equal(terminalOfRequestTopic('tillpoint/v1/terminals/trm_x/req'), undefined);
  assert.equal(terminalOfRequestTopic(`other/v1/terminals/${A}/req`), undefined);
  assert.equal(terminalOfRequestTopic(`${requestTopic(A)}/extra`), undefined);
  assert.equal(terminalOfStatusTopic(statusTopic(A)), A);
  assert.equal(terminalOfStatusTopic(requestTopic(A)), undefined);
  assert.equal(terminalOfRequestTopic(statusTopic(A)), undefined);
  assert.equal(sharedRequestFilter('tillpoint'), '$share/tillpoint/tillpoint/v1/terminals/+/req');
  assert.equal(isTerminalId(A), true);
  assert.equal(isTerminalId('trm_+'), false);
  assert.equal(isTerminalId(A.toUpperCase()), false);
});
