import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createTestDb } from '../../../platform/testing.ts';
import { CONNECTOR_NAMES } from './index.ts';
import { contractSuite, type ContractFixture } from './contract.testkit.ts';
import { pspbankFixture } from './pspbank/contract.fixture.ts';
import { simbankFixture } from './simbank/contract.fixture.ts';

// Every connector passes the same contract (contract.testkit.ts). A connector added to the
// registry without a fixture here fails the first test.

const FIXTURES: ContractFixture[] = [simbankFixture, pspbankFixture];

test('every registered connector has a contract fixture', () => {
  assert.deepEqual(FIXTURES.map((f) => f.connector).sort(), [...CONNECTOR_NAMES].sort());
});

for (const f of FIXTURES) contractSuite(f, { describe, test }, () => createTestDb());
