import { parseArgs } from 'node:util';
import { loadConfig, ConfigError } from '../platform/config.ts';
import { openDb } from '../platform/db.ts';
import { migrate } from '../platform/migrate.ts';

// The `tillpoint` command. Each subcommand loads the same config as the server.

const HELP = `tillpoint <command> [options]

Commands:
  serve [--role api|worker|all]     Run the platform (default role: all). In development the
                                    demo data is loaded and its credentials written to
                                    <data dir>/demo.json.
  migrate                           Apply database migrations and exit.
  ledger verify                     Check every ledger invariant; exits 1 naming the first violation.
  bank-sim [--port N] [--host H]    Run the bank simulator as its own process.
           [--latency-ms N] [--approve R] [--decline R] [--pending R] [--timeout R] [--dev]
  banks status                      Show each configured bank and whether it is marked down.
  banks mark-down <CODE> [--reason TEXT]
  banks mark-up <CODE>              Route around a bank (or stop doing so).
  api-keys create --name NAME [--merchant mer_…] [--permissions a,b] [--expires-days N]
                                    Issue an API key; it is printed once.
  help                              This text.

Configuration comes from the environment; see README.md for every setting.`;

async function withDb<T>(fn: (db: Awaited<ReturnType<typeof openDb>>, config: ReturnType<typeof loadConfig>) => Promise<T>): Promise<T> {
  const config = loadConfig();
  const db = await openDb({ databaseUrl: config.databaseUrl, dataDir: config.dataDir, poolSize: 2 });
  try {
    await migrate(db);
    return await fn(db, config);
  } finally {
    await db.close();
  }
}

async function serve(argv: string[]) {
  const { values } = parseArgs({ args: argv, options: { role: { type: 'string', default: 'all' } } });
  const role = values.role as string;
  if (!['api', 'worker', 'all'].includes(role)) throw new ConfigError('--role', 'must be api, worker or all');
  const { createApp } = await import('../app.ts');
  const app = await createApp({ role: role as 'api' | 'worker' | 'all' });
  const url = await app.start();
  const lines = [`Tillpoint is running (role: ${role}, mode: ${app.config.mode}, database: ${app.db.driver === 'pglite' ? `PGlite in ${app.config.dataDir}` : 'PostgreSQL'})`];
  if (url) {
    lines.push(`  API:      ${app.config.publicUrl}/v1`, `  Docs:     ${app.config.publicUrl}/docs`, `  OpenAPI:  ${app.config.publicUrl}/openapi.json`, `  Metrics:  ${app.config.publicUrl}/metrics`);
    if (app.config.embeddedBankSim) lines.push(`  Bank sim: ${app.config.publicUrl}/sim (development only)`);
    if (app.config.mode !== 'production') {
      const { loadDemo } = await import('../roles/demo.ts');
      const demo = await loadDemo(app.db, { dataDir: app.config.dataDir, apiUrl: app.config.publicUrl });
      lines.push(`  Demo:     ${demo.file} (${demo.created ? 'created' : 'reused'}; merchant ${demo.info.merchant_id})`);
    }
  }
  process.stdout.write(lines.join('\n') + '\n');
  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    app.logger.info({ signal }, 'stopping');
    await app.stop();
    process.exit(0);
  };
  process.on('SIGINT', () => void stop('SIGINT'));
  process.on('SIGTERM', () => void stop('SIGTERM'));
}

async function ledgerCmd(argv: string[]) {
  if (argv[0] !== 'verify') throw new ConfigError('ledger', 'usage: tillpoint ledger verify');
  const { runLedgerVerify, formatViolation } = await import('../modules/ledger/index.ts');
  const report = await withDb((db) => runLedgerVerify(db));
  if (report.ok) {
    process.stdout.write(`ledger ok: ${report.checked.entries} entries, ${report.checked.accounts} accounts, every invariant holds\n`);
    return 0;
  }
  process.stderr.write(`ledger verify FAILED: ${formatViolation(report.violations[0])}\n`);
  if (report.violations.length > 1) process.stderr.write(`(${report.violations.length - 1} more violation(s))\n`);
  return 1;
}

async function banksCmd(argv: string[]) {
  const { createBanksService } = await import('../modules/banks/index.ts');
  const { createMetrics } = await import('../platform/metrics.ts');
  return withDb(async (db, config) => {
    const banks = createBanksService({ db, config, metrics: createMetrics() });
    const [sub, code, ...rest] = argv;
    if (sub === 'mark-down' || sub === 'mark-up') {
      if (!code) throw new ConfigError('banks', `usage: tillpoint banks ${sub} <CODE>`);
      const { values } = parseArgs({ args: rest, options: { reason: { type: 'string' } } });
      if (sub === 'mark-down') await banks.markDown(code, values.reason ?? 'marked down by operator');
      else await banks.markUp(code);
    } else if (sub !== 'status') {
      throw new ConfigError('banks', 'usage: tillpoint banks status|mark-down|mark-up');
    }
    for (const s of await banks.statuses()) process.stdout.write(JSON.stringify(s) + '\n');
    return 0;
  });
}

async function apiKeysCmd(argv: string[]) {
  const [sub, ...rest] = argv;
  if (sub !== 'create') throw new ConfigError('api-keys', 'usage: tillpoint api-keys create --name NAME [--merchant ID] [--permissions a,b]');
  const { values } = parseArgs({ args: rest, options: { name: { type: 'string' }, merchant: { type: 'string' }, permissions: { type: 'string' }, 'expires-days': { type: 'string' } } });
  if (!values.name) throw new ConfigError('--name', 'is required');
  const { PERMISSIONS } = await import('../http/principal.ts');
  const perms = values.permissions ? values.permissions.split(',').map((s) => s.trim()) : [...PERMISSIONS];
  for (const p of perms) if (!(PERMISSIONS as readonly string[]).includes(p)) throw new ConfigError('--permissions', `unknown permission "${p}"`);
  const days = values['expires-days'] ? Number(values['expires-days']) : undefined;
  if (days !== undefined && !(Number.isInteger(days) && days > 0)) throw new ConfigError('--expires-days', 'must be a positive integer');
  const { createApiKey } = await import('../modules/identity/index.ts');
  return withDb(async (db) => {
    if (values.merchant) {
      const m = await db.query(`SELECT 1 FROM merchants.merchants WHERE id = $1`, [values.merchant]);
      if (!m.rows[0]) throw new ConfigError('--merchant', `no merchant ${values.merchant}`);
    }
    const k = await createApiKey(db, { name: values.name!, merchantId: values.merchant ?? null, permissions: perms, expiresAt: days ? new Date(Date.now() + days * 86_400_000) : null });
    process.stdout.write(JSON.stringify({ id: k.id, api_key: k.key, merchant_id: k.merchantId, permissions: k.permissions }) + '\n');
    process.stderr.write('Store this key now: it is not shown again.\n');
    return 0;
  });
}

export async function main(argv: string[]): Promise<number | undefined> {
  const [cmd, ...rest] = argv;
  switch (cmd) {
    case 'serve':
      await serve(rest);
      return undefined; // keeps running
    case 'migrate': {
      const applied = await withDb(async () => []);
      process.stdout.write(`migrations up to date${applied.length ? `: applied ${applied.join(', ')}` : ''}\n`);
      return 0;
    }
    case 'ledger':
      return ledgerCmd(rest);
    case 'bank-sim': {
      const { parseBankSimArgs, startBankSimulator } = await import('../modules/banks/index.ts');
      const sim = await startBankSimulator(parseBankSimArgs(rest));
      process.stdout.write(`bank simulator listening on ${sim.url}\n`);
      const stop = async () => {
        await sim.close();
        process.exit(0);
      };
      process.on('SIGINT', () => void stop());
      process.on('SIGTERM', () => void stop());
      return undefined;
    }
    case 'banks':
      return banksCmd(rest);
    case 'api-keys':
      return apiKeysCmd(rest);
    case undefined:
    case 'help':
    case '--help':
    case '-h':
      process.stdout.write(HELP + '\n');
      return 0;
    default:
      process.stderr.write(`unknown command "${cmd}"\n\n${HELP}\n`);
      return 2;
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    if (code !== undefined) process.exit(code);
  },
  (e) => {
    if (e instanceof ConfigError) {
      process.stderr.write(`${e.message}\n`);
      process.exit(2);
    }
    process.stderr.write(`tillpoint: ${(e as Error).message}\n`);
    process.exit(1);
  },
);
