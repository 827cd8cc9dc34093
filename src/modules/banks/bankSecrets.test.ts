import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createFileSecrets, createSecretStore } from '../../platform/secrets.ts';
import { bindBankSecrets } from './bankSecrets.ts';
import type { BankConfig } from './banks.settings.ts';

// A bank whose BANKS entry names a secret signs and verifies with the secret's current value, and
// accepts the previous one while the rotation overlap lasts. Secrets come from mounted files here
// (the same store serves env and AWS Secrets Manager, src/platform/secrets.test.ts).

test('a bank bound to a secret follows its rotation, and a missing secret stops the start, named', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'tp-bank-secrets-'));
  writeFileSync(join(dir, 'BANK_AXIS_SECRET'), 'axis-secret-1\n');
  const store = createSecretStore(createFileSecrets(dir), { refreshMs: 60_000, overlapMs: 3_600_000 });
  const bank: BankConfig = {
    code: 'AXIS',
    connector: 'simbank',
    url: 'https://psp.example',
    secret: '',
    secretName: 'BANK_AXIS_SECRET',
  };
  const plain: BankConfig = { code: 'PLAIN', connector: 'simbank', url: 'https://psp.example', secret: 'given' };
  await bindBankSecrets([bank, plain], store);
  assert.equal(bank.secret, 'axis-secret-1');
  assert.equal(bank.previousSecret, undefined);
  assert.equal(plain.secret, 'given', 'a bank without secret_name keeps its own secret');

  // Rotation: the new value in place, the old one kept as NAME_PREVIOUS.
  writeFileSync(join(dir, 'BANK_AXIS_SECRET'), 'axis-secret-2\n');
  writeFileSync(join(dir, 'BANK_AXIS_SECRET_PREVIOUS'), 'axis-secret-1\n');
  await store.refresh();
  assert.equal(bank.secret, 'axis-secret-2', 'only the current value signs');
  assert.equal(bank.previousSecret, 'axis-secret-1', 'the previous one verifies during the overlap');

  // Past the overlap (the file's mtime dates the rotation) the previous value no longer verifies.
  const longAgo = new Date(Date.now() - 2 * 3_600_000);
  utimesSync(join(dir, 'BANK_AXIS_SECRET'), longAgo, longAgo);
  await store.refresh();
  assert.equal(bank.secret, 'axis-secret-2');
  assert.equal(bank.previousSecret, undefined);

  await assert.rejects(
    bindBankSecrets([{ ...bank, code: 'NOPE', secretName: 'BANK_NOPE_SECRET' }], store),
    /BANKS\[NOPE\]\.secret_name: secret BANK_NOPE_SECRET is not set in files/,
  );
});
