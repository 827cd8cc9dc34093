import { createHash } from 'node:crypto';
import { createReadStream, existsSync, mkdirSync, statSync, writeFileSync } from 'node:fs';
import { userInfo } from 'node:os';
import { extname, join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { ConfigError, type Config } from '../../config.ts';
import type { Db } from '../../platform/db.ts';
import { systemClock } from '../../platform/clock.ts';
import { UsageError, withServerDb, type Command } from '../command.ts';

// `tillpoint import …`: bulk onboarding from files (src/modules/onboarding/README.md). Progress
// goes to stderr, the report to stdout and to <data dir>/imports/ (or --report-dir).

const USAGE = `usage:
  tillpoint import merchants|stores|terminals|reward-balances|payments FILE [--mapping NAME|PATH] [--format csv|jsonl]
                   [--set FIELD=VALUE]... [--dry-run] [--batch-size N] [--report-dir DIR] [--quiet]
                   [--credentials secrets|certificates --credentials-out DIR [--days N]]   (terminals)
  tillpoint import status ID [--json]
  tillpoint import rejects ID [--limit N]
  tillpoint import mappings`;

const KINDS = ['merchants', 'stores', 'terminals', 'reward-balances', 'payments'];

/** Everything an import needs, opened as a server would: the database, the vault, the audit writer. */
export async function withOnboarding<T>(
  fn: (
    svc: import('../../modules/onboarding/index.ts').OnboardingService,
    db: Db,
    config: Config,
    more: {
      vault: import('../../modules/vault/index.ts').Vault;
      ledger: import('../../modules/ledger/index.ts').LedgerService;
      customerKey: Buffer;
    },
  ) => Promise<T>,
): Promise<T> {
  return withServerDb(async ({ config, logger, secrets, db }) => {
    const { createVault, createKeyManagerFromConfig } = await import('../../modules/vault/index.ts');
    const { createAuditWriter, loadAuditKeys } = await import('../../modules/audit/index.ts');
    const { createLedgerService } = await import('../../modules/ledger/index.ts');
    const { loadCustomerKey } = await import('../../modules/rewards/index.ts');
    const { createOnboardingService } = await import('../../modules/onboarding/index.ts');
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
      await vault.init();
      const audit = createAuditWriter({
        keys: loadAuditKeys({
          mode: config.mode,
          dataDir: config.dataDir,
          signingKey: config.audit.signingKey,
          trustedPublicKeys: config.audit.trustedPublicKeys,
        }),
        clock: systemClock,
      });
      const ledger = createLedgerService();
      const customerKey = loadCustomerKey(config.rewards.customerKey, config.dataDir, config.mode);
      const svc = createOnboardingService({
        db,
        ledger,
        fields: vault.cipher,
        vpaPattern: config.payments.vpaPattern,
        bankCodes: config.banks.map((b) => b.code),
        customerKey,
        audit,
        clock: systemClock,
      });
      return await fn(svc, db, config, { vault, ledger, customerKey });
    } finally {
      vault.close();
    }
  });
}

async function sha256File(path: string): Promise<string> {
  const h = createHash('sha256');
  for await (const c of createReadStream(path)) h.update(c as Buffer);
  return h.digest('hex');
}

const fmt = (n: number) => n.toLocaleString('en-IN');

/** A progress bar on stderr (a line every few seconds when stderr is not a terminal). */
function progressBar(quiet: boolean) {
  const t0 = performance.now();
  let last = 0;
  const tty = process.stderr.isTTY === true;
  return {
    update(p: import('../../modules/onboarding/index.ts').Progress) {
      if (quiet) return;
      const now = performance.now();
      if (!tty && now - last < 5000) return;
      last = now;
      const frac = p.bytesTotal > 0 ? Math.min(1, p.bytesRead / p.bytesTotal) : 1;
      const width = 30;
      const bar = '#'.repeat(Math.round(frac * width)).padEnd(width, '.');
      const secs = (now - t0) / 1000;
      const rate = secs > 0 ? Math.round((p.created + p.unchanged + p.rejected) / secs) : 0;
      const line = `[${bar}] ${(frac * 100).toFixed(0).padStart(3)}%  line ${fmt(p.lines)}  created ${fmt(p.created)}  unchanged ${fmt(p.unchanged)}  rejected ${fmt(p.rejected)}  ${fmt(rate)} rows/s`;
      process.stderr.write(tty ? `\r${line}` : `${line}\n`);
    },
    done() {
      if (!quiet && tty) process.stderr.write('\n');
    },
  };
}

export const importCommand: Command = {
  name: 'import',
  usage:
    'import merchants|stores|terminals|reward-balances|payments FILE [--mapping M] [--dry-run] [--set F=V]… [--credentials secrets|certificates --credentials-out DIR] | status ID | rejects ID | mappings',
  summary:
    'Bulk onboarding from CSV or JSON-lines files: merchants, stores, terminals (with MQTT secrets or certificate bundles) and reward opening balances; validated row by row, resumable, re-runnable, with a reconciliation.',
  async run(argv) {
    const [sub, ...rest] = argv;
    const { values, positionals } = parseArgs({
      args: rest,
      allowPositionals: true,
      options: {
        mapping: { type: 'string' },
        format: { type: 'string' },
        set: { type: 'string', multiple: true },
        'dry-run': { type: 'boolean', default: false },
        'batch-size': { type: 'string' },
        'report-dir': { type: 'string' },
        quiet: { type: 'boolean', default: false },
        credentials: { type: 'string' },
        'credentials-out': { type: 'string' },
        days: { type: 'string' },
        json: { type: 'boolean', default: false },
        limit: { type: 'string' },
      },
    });
    const ob = await import('../../modules/onboarding/index.ts');
    if (sub === 'mappings') {
      for (const name of ob.shippedMappings()) {
        const m = ob.loadMapping(name);
        process.stdout.write(`${name.padEnd(38)} ${m.kind.padEnd(16)} ${m.format.padEnd(6)} ${m.description ?? ''}\n`);
      }
      return 0;
    }
    if (sub === 'status' || sub === 'rejects') {
      const id = positionals[0];
      if (!id) throw new UsageError(USAGE);
      return withOnboarding(async (svc) => {
        const j = await svc.get(id);
        if (!j) {
          process.stderr.write(`no import ${id}\n`);
          return 1;
        }
        if (sub === 'status') {
          if (values.json) process.stdout.write(`${JSON.stringify(j, null, 2)}\n`);
          else
            process.stdout.write(
              `${j.id} ${j.kind} ${j.status}${j.dry_run ? ' (dry run)' : ''}: ${fmt(Number(j.rows_total))} rows, created ${fmt(Number(j.created))}, unchanged ${fmt(Number(j.unchanged))}, rejected ${fmt(Number(j.rejected))}; by ${j.actor}; file sha256 ${j.file_sha256}${j.error ? `; ${j.error}` : ''}\n`,
            );
          return 0;
        }
        const limit = values.limit === undefined ? 1000 : Number(values.limit);
        if (!Number.isInteger(limit) || limit < 1) throw new ConfigError('--limit', 'must be a positive integer');
        let after = 0;
        let left = limit;
        while (left > 0) {
          const page = await svc.rejects(id, { afterLine: after, limit: Math.min(500, left) });
          if (page.length === 0) break;
          for (const r of page) process.stdout.write(`line ${r.line}${r.field ? ` (${r.field})` : ''}: ${r.reason}\n`);
          after = Number(page[page.length - 1].line);
          left -= page.length;
        }
        return 0;
      });
    }
    if (!KINDS.includes(sub)) throw new UsageError(USAGE);
    const kind = sub as import('../../modules/onboarding/index.ts').ImportKind;
    const file = positionals[0];
    if (!file || positionals.length > 1) throw new UsageError(USAGE);
    if (!existsSync(file) || !statSync(file).isFile()) throw new ConfigError('FILE', `${file} is not a readable file`);
    const format = values.format ?? (['.jsonl', '.ndjson'].includes(extname(file).toLowerCase()) ? 'jsonl' : 'csv');
    if (format !== 'csv' && format !== 'jsonl') throw new ConfigError('--format', 'must be csv or jsonl');
    let mapping = ob.loadMapping(values.mapping ?? ob.defaultMappingName(kind, format));
    if (mapping.kind !== kind) throw new ConfigError('--mapping', `${mapping.name} is a mapping for ${mapping.kind}`);
    if (values.format && mapping.format !== format)
      throw new ConfigError('--format', `mapping ${mapping.name} reads ${mapping.format}`);
    const constants: Record<string, string> = {};
    for (const s of values.set ?? []) {
      const eq = s.indexOf('=');
      if (eq < 1) throw new ConfigError('--set', 'must be FIELD=VALUE');
      constants[s.slice(0, eq)] = s.slice(eq + 1);
    }
    mapping = ob.withConstants(mapping, constants);
    const batchSize = values['batch-size'] === undefined ? ob.DEFAULT_BATCH_SIZE : Number(values['batch-size']);
    if (!Number.isInteger(batchSize) || batchSize < 1 || batchSize > 10_000)
      throw new ConfigError('--batch-size', 'must be an integer from 1 to 10000');
    const creds = values.credentials;
    if (creds !== undefined) {
      if (kind !== 'terminals') throw new ConfigError('--credentials', 'only for terminals');
      if (creds !== 'secrets' && creds !== 'certificates')
        throw new ConfigError('--credentials', 'must be secrets or certificates');
      if (!values['credentials-out']) throw new ConfigError('--credentials-out', 'is required with --credentials');
      if (values['dry-run']) throw new ConfigError('--credentials', 'a dry run issues no credentials');
    }
    const days = values.days === undefined ? undefined : Number(values.days);
    if (days !== undefined && (!Number.isInteger(days) || days < 1 || days > 3650))
      throw new ConfigError('--days', 'must be an integer from 1 to 3650');

    return withOnboarding(async (svc, db, config) => {
      const bytes = statSync(file).size;
      if (!values.quiet) process.stderr.write(`hashing ${file} (${fmt(bytes)} bytes)…\n`);
      const sha256 = await sha256File(file);
      const bar = progressBar(values.quiet);
      const stop = new AbortController();
      const onSignal = () => {
        if (stop.signal.aborted) process.exit(130);
        process.stderr.write('\nstopping after this batch (Ctrl-C again to quit at once; run again to resume)…\n');
        stop.abort();
      };
      process.on('SIGINT', onSignal);
      process.on('SIGTERM', onSignal);
      let report: import('../../modules/onboarding/index.ts').ImportReport;
      try {
        report = await svc.run({
          kind,
          mapping,
          open: () => createReadStream(file, { highWaterMark: 256 * 1024 }),
          sha256,
          bytes,
          dryRun: values['dry-run'],
          actor: { type: 'cli', id: userInfo().username, merchant_id: null },
          batchSize,
          signal: stop.signal,
          onProgress: (p) => bar.update(p),
        });
      } finally {
        bar.done();
        process.off('SIGINT', onSignal);
        process.off('SIGTERM', onSignal);
      }
      const rejects = await svc.rejects(report.import_id, { limit: 20 });
      process.stdout.write(ob.formatReport(report, rejects));
      const dir = resolve(values['report-dir'] ?? join(config.dataDir, 'imports'));
      mkdirSync(dir, { recursive: true, mode: 0o700 });
      writeFileSync(join(dir, `${report.import_id}.json`), `${JSON.stringify(report, null, 2)}\n`);
      const written = [join(dir, `${report.import_id}.json`)];
      if (!report.dry_run) {
        const recon = join(dir, `${report.import_id}-reconciliation.csv`);
        writeFileSync(recon, ob.reconciliationCsv(await svc.reconciliationLines(report.import_id)));
        written.push(recon);
      }
      process.stdout.write(`report: ${written.join(', ')}\n`);
      if (creds && report.status === 'completed') {
        const d = await ob.deliverTerminalCredentials(db, {
          importId: report.import_id,
          kind: creds as 'secrets' | 'certificates',
          outDir: resolve(values['credentials-out']!),
          mode: config.mode,
          pkiDir: config.mqtt.pkiDir,
          mqttUrl:
            config.mqtt.url ??
            (config.mqtt.port
              ? `mqtt://${config.mqtt.host === '0.0.0.0' ? '127.0.0.1' : config.mqtt.host}:${config.mqtt.port}`
              : null),
          passphrase: config.onboarding.bundlePassphrase,
          days,
          onProgress: (n) => {
            if (!values.quiet && process.stderr.isTTY) process.stderr.write(`\rcredentials: ${fmt(n)} terminals`);
          },
        });
        if (!values.quiet && process.stderr.isTTY) process.stderr.write('\n');
        process.stdout.write(
          `credentials (${d.kind}) for ${fmt(d.terminals)} terminals in ${fmt(d.stores)} stores: ${d.files.length} file(s) in ${resolve(values['credentials-out']!)}\n`,
        );
        if (d.kind === 'secrets')
          process.stderr.write('The CSV holds live secrets: hand it to the provisioning team and delete it.\n');
      }
      return report.status === 'completed' && report.rejected === 0 ? 0 : 1;
    });
  },
};
