import { readFileSync } from 'node:fs';
import { userInfo } from 'node:os';
import { parseArgs } from 'node:util';
import { ConfigError, type Config } from '../../platform/config.ts';
import type { Db } from '../../platform/db.ts';
import { withDb, type Command, UsageError } from '../command.ts';

// `tillpoint audit …`: check the trail, prove a record, hand out the public key. Running these
// needs database access, so each run is itself recorded (as the OS user who ran it).

const USAGE = [
  'audit verify [--json]',
  'audit prove <record id> [--tree-size N]',
  'audit check-proof <file|-> [--public-key BASE64]',
  'audit consistency <first size> <second size>',
  'audit head',
  'audit seal',
].join('\n  ');

async function withAudit<T>(
  fn: (a: import('../../modules/audit/index.ts').AuditService, db: Db, config: Config) => Promise<T>,
): Promise<T> {
  const { createAuditService } = await import('../../modules/audit/index.ts');
  const { createLogger } = await import('../../platform/log.ts');
  const { systemClock } = await import('../../platform/clock.ts');
  return withDb(async (db, config) =>
    fn(createAuditService({ db, config, clock: systemClock, logger: createLogger({ level: 'warn' }) }), db, config),
  );
}

const cliActor = () => ({ type: 'cli' as const, id: userInfo().username, merchant_id: null });
const print = (v: unknown) => process.stdout.write(JSON.stringify(v, null, 2) + '\n');

export const audit: Command = {
  name: 'audit',
  usage: USAGE,
  summary:
    'The tamper-evident audit trail: verify recomputes the tree and checks every signed head (exits 1 naming the first changed, removed or inserted record); prove prints an inclusion proof anyone can check with check-proof; consistency proves a later head extends an earlier one; seal seals, signs and exports now (every segment due, a backlog as several).',
  async run(argv) {
    const [sub, ...rest] = argv;
    switch (sub) {
      case 'verify': {
        const { values } = parseArgs({ args: rest, options: { json: { type: 'boolean', default: false } } });
        const report = await withAudit(async (a, db) => {
          const r = await a.verify();
          await a.record(db, {
            action: 'audit.verified',
            actor: cliActor(),
            outcome: r.ok ? 'success' : 'failure',
            resource: { type: 'audit_trail' },
            details: { records: r.records_checked, first_problem: r.first?.kind ?? null },
          });
          return r;
        });
        if (values.json) print(report);
        if (report.ok) {
          if (!values.json)
            process.stdout.write(
              `audit trail ok: ${report.records_checked} records, ${report.leaves} leaves, ${report.heads_checked} signed tree heads, ${report.unsealed} not yet sealed${report.archived_leaves ? `, ${report.archived_leaves} archived` : ''}\n`,
            );
          return 0;
        }
        process.stderr.write(`audit verify FAILED: ${report.first!.message}\n`);
        if (report.problems.length > 1)
          process.stderr.write(`(${report.problems.length - 1} more problem(s); --json lists them)\n`);
        return 1;
      }
      case 'prove': {
        const { values, positionals } = parseArgs({
          args: rest,
          allowPositionals: true,
          options: { 'tree-size': { type: 'string' } },
        });
        if (!positionals[0]) throw new UsageError(`usage: tillpoint audit prove <record id> [--tree-size N]`);
        const size = values['tree-size'] === undefined ? undefined : Number(values['tree-size']);
        if (size !== undefined && !(Number.isInteger(size) && size > 0))
          throw new ConfigError('--tree-size', 'must be a positive integer');
        print(
          await withAudit(async (a, db) => {
            const p = await a.prove(positionals[0], size);
            await a.record(db, {
              action: 'audit.proof_issued',
              actor: cliActor(),
              resource: { type: 'audit_record', id: positionals[0] },
              details: { tree_size: p.tree_head.tree_size },
            });
            return p;
          }),
        );
        return 0;
      }
      case 'check-proof': {
        // No database: this is what an outsider runs, with the public key they were given.
        const { values, positionals } = parseArgs({
          args: rest,
          allowPositionals: true,
          options: { 'public-key': { type: 'string' } },
        });
        if (!positionals[0]) throw new UsageError('usage: tillpoint audit check-proof <file|-> [--public-key BASE64]');
        const { checkInclusionProof } = await import('../../modules/audit/index.ts');
        const text = readFileSync(positionals[0] === '-' ? 0 : positionals[0], 'utf8');
        const r = checkInclusionProof(JSON.parse(text), values['public-key']);
        if (r.ok) {
          process.stdout.write('proof ok: the record is in the signed tree head\n');
          return 0;
        }
        process.stderr.write(`proof FAILED: ${r.reason}\n`);
        return 1;
      }
      case 'consistency': {
        const [a, b] = rest.map(Number);
        if (!(Number.isInteger(a) && Number.isInteger(b) && a > 0 && b >= a))
          throw new UsageError('usage: tillpoint audit consistency <first size> <second size>');
        print(await withAudit((s) => s.consistency(a, b)));
        return 0;
      }
      case 'head':
        print(
          await withAudit(async (a) => ({
            head: (await a.latestHead()) ?? null,
            key_id: a.keys.keyId,
            public_key: a.keys.publicKey.toString('base64'),
          })),
        );
        return 0;
      case 'seal': {
        const r = await withAudit(async (a) => {
          const sealed = await a.seal();
          const head = await a.signHead(true);
          // Every segment due, a backlog included: each ends at a signed head.
          const exported = [];
          for (let s = await a.exportSegments(); s; s = await a.exportSegments()) exported.push(s);
          return {
            sealed: sealed.sealed,
            tree_size: sealed.treeSize,
            signed: head?.tree_size ?? null,
            exported,
            forged: sealed.forged,
          };
        });
        print(r);
        return r.forged.length > 0 ? 1 : 0;
      }
      default:
        throw new UsageError(`usage:\n  tillpoint ${USAGE.split('\n  ').join('\n  tillpoint ')}`);
    }
  },
};
