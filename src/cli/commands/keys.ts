import { parseArgs } from 'node:util';
import { ConfigError, loadConfig } from '../../config.ts';
import { systemClock } from '../../platform/clock.ts';
import { UsageError, withServerDb, type Command } from '../command.ts';

// `tillpoint keys …`: the key hierarchy of src/modules/vault (README there has the rules).

const USAGE = `usage:
  tillpoint keys status [--json]
  tillpoint keys rotate [--purpose P] [--kind aead|hmac]
  tillpoint keys rotate --kek
  tillpoint keys rewrap
  tillpoint keys rewrap-deks
  tillpoint keys keyring-new
  tillpoint keys keyring-add-version < keyring.json`;

async function withVault<T>(fn: (vault: import('../../modules/vault/index.ts').Vault) => Promise<T>): Promise<T> {
  return withServerDb(async ({ config, logger, secrets, db }) => {
    const { createVault, createKeyManagerFromConfig } = await import('../../modules/vault/index.ts');
    const { ENCRYPTED_FIELDS } = await import('../../app.ts');
    const vault = createVault({
      db,
      clock: systemClock,
      logger,
      config: config.keys,
      fields: ENCRYPTED_FIELDS,
      vpaPattern: config.payments.vpaPattern,
      kms: await createKeyManagerFromConfig(config.keys, { mode: config.mode, secrets }),
    });
    try {
      await vault.init(); // the keys of every declared field exist, as they would after a start
      return await fn(vault);
    } finally {
      vault.close();
    }
  });
}

const days = (d: number | null) => (d === null ? '?' : d < 1 ? `${Math.round(d * 24)}h` : `${Math.floor(d)}d`);

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

export const keys: Command = {
  name: 'keys',
  usage:
    'keys status | rotate [--purpose P] [--kind aead|hmac] | rotate --kek | rewrap | rewrap-deks | keyring-new | keyring-add-version',
  summary:
    'Data-encryption keys: age and rows per version, rotation (the worker re-encrypts and retires old versions), KEK rotation, keyrings for a secret.',
  async run(argv) {
    const [sub, ...rest] = argv;
    const { values } = parseArgs({
      args: rest,
      options: {
        purpose: { type: 'string' },
        kind: { type: 'string' },
        kek: { type: 'boolean', default: false },
        json: { type: 'boolean', default: false },
      },
    });
    if (values.kind !== undefined && values.kind !== 'aead' && values.kind !== 'hmac')
      throw new ConfigError('--kind', 'must be aead or hmac');

    switch (sub) {
      case 'status': {
        const s = await withVault((v) => v.status());
        if (values.json) {
          process.stdout.write(JSON.stringify(s, null, 2) + '\n');
          return 0;
        }
        const out: string[] = [];
        out.push(
          `key-encrypting key: ${s.kek.kekRef} (${s.kek.provider}), age ${days(s.kek.ageDays)} of ${s.kek.cryptoperiodDays}d${s.kek.overdue ? '  OVERDUE: rotate with "keys rotate --kek"' : ''}`,
        );
        out.push('', 'purpose          kind  ver  state         age     period  rows');
        for (const k of s.keys) {
          const rows = k.rows.length ? k.rows.map((r) => `${r.rows} in ${r.field}`).join(', ') : '-';
          out.push(
            `${k.purpose.padEnd(16)} ${k.kind.padEnd(5)} ${String(k.version).padStart(3)}  ${k.state.padEnd(12)}  ${days(k.ageDays).padStart(6)}  ${`${k.cryptoperiodDays}d`.padStart(6)}  ${rows}${k.overdue ? '  OVERDUE' : ''}`,
          );
        }
        for (const p of s.plaintextRows)
          out.push(`not yet encrypted: ${p.rows} rows in ${p.field} (the worker encrypts them)`);
        const busy = s.jobs.filter((j) => j.cursor !== null);
        for (const j of busy) out.push(`re-encrypting ${j.field}: at ${j.cursor}, ${j.pass_rewritten} rows so far`);
        for (const j of s.jobs.filter((x) => Number(x.pass_failures) > 0))
          out.push(`WARNING ${j.field}: ${j.pass_failures} rows did not decrypt in the last pass (see the worker log)`);
        process.stdout.write(out.join('\n') + '\n');
        return 0;
      }
      case 'rotate': {
        if (values.kek) {
          const r = await withVault((v) => v.rotateKek());
          process.stdout.write(
            `KEK rotated: now ${r.kek.kekRef}; ${r.rewrapped} data keys re-wrapped; ${r.retired} old KEK versions retired\n`,
          );
          return 0;
        }
        const rotated = await withVault((v) =>
          v.rotate({ purpose: values.purpose, kind: values.kind as 'aead' | 'hmac' | undefined }),
        );
        if (rotated.length === 0) {
          process.stderr.write(`no key to rotate${values.purpose ? ` for purpose "${values.purpose}"` : ''}\n`);
          return 1;
        }
        for (const r of rotated) process.stdout.write(`${r.purpose} ${r.kind}: version ${r.from ?? '-'} -> ${r.to}\n`);
        const wait = Math.ceil((2 * loadConfig().keys.cacheTtlMs + 1000) / 1000);
        process.stdout.write(
          `New data is encrypted with the new versions within ${Math.ceil(loadConfig().keys.cacheTtlMs / 1000)}s. The worker starts re-encrypting old rows after ${wait}s and retires the old versions when no row uses them ("keys status" shows progress).\n`,
        );
        return 0;
      }
      case 'rewrap': {
        const n = await withVault(async (v) => {
          const done = await v.rewrap.runToCompletion();
          return { done, left: (await v.status()).keys.filter((k) => k.state === 'decrypt_only') };
        });
        process.stdout.write(`${n.done} rows re-encrypted\n`);
        if (n.left.length > 0) {
          process.stdout.write(
            `still decrypt-only (wait until every process has seen the rotation, then run again): ${n.left.map((k) => `${k.purpose}/${k.kind} v${k.version}`).join(', ')}\n`,
          );
        }
        return 0;
      }
      case 'rewrap-deks': {
        const n = await withVault((v) => v.rewrapDeks());
        process.stdout.write(`${n} data keys re-wrapped under the current key-encrypting key\n`);
        return 0;
      }
      case 'keyring-new': {
        // Key material on stdout, meant to be piped straight into a secret store.
        const { newKeyringJson } = await import('../../modules/vault/index.ts');
        process.stdout.write(newKeyringJson());
        return 0;
      }
      case 'keyring-add-version': {
        const { addKeyringVersion } = await import('../../modules/vault/index.ts');
        process.stdout.write(addKeyringVersion(await readStdin()));
        return 0;
      }
      default:
        throw new UsageError(USAGE);
    }
  },
};
