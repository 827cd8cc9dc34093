import { parseArgs } from 'node:util';
import { withDb, withServices, UsageError, type Command } from '../command.ts';

// `tillpoint settle close-cycle [KEY]`: closes a settlement cycle (src/modules/settlement/README.md).
// The worker closes cycles as they end; this is for closing one by hand (after downtime, or to see
// the totals now). Without KEY: the last cycle that has ended.

const USAGE = `usage:
  tillpoint settle close-cycle [YYYY-MM-DD-C<n>] [--json]
  tillpoint settle verify
  tillpoint settle compensations [--status due|pending|paid|failed|legacy] [--limit N]
  tillpoint settle retry-compensation PAYMENT_ID DAY --reason TEXT [--json]`;

export const settle: Command = {
  name: 'settle',
  usage:
    'settle close-cycle [YYYY-MM-DD-C<n>] [--json] | verify | compensations [--status S] [--limit N] | retry-compensation PAYMENT_ID DAY --reason TEXT [--json]',
  summary:
    "Close a settlement cycle (expected totals per bank, merchants' payouts, the bank files compared); verify settlement against the ledger; list compensation credits; send again one the bank refused (to the payer's VPA: another VPA needs a second operator, over the API).",
  async run(argv) {
    if (argv[0] === 'verify' && argv.length === 1) return verify();
    if (argv[0] === 'compensations') return listCompensations(argv.slice(1));
    if (argv[0] === 'retry-compensation') return retryCompensation(argv.slice(1));
    if (argv[0] !== 'close-cycle') throw new UsageError(USAGE);
    let parsed: ReturnType<typeof parseArgs<{ options: { json: { type: 'boolean' } }; allowPositionals: true }>>;
    try {
      parsed = parseArgs({ args: argv.slice(1), options: { json: { type: 'boolean' } }, allowPositionals: true });
    } catch (e) {
      throw new UsageError(`${(e as Error).message}\n${USAGE}`);
    }
    if (parsed.positionals.length > 1) throw new UsageError(USAGE);
    const { lastEndedCycle } = await import('../../modules/settlement/index.ts');
    const { isAppError } = await import('../../platform/errors.ts');
    const { settlementForCommand } = await import('../settlement.ts');
    return withDb(async (db, config) => {
      const svc = await settlementForCommand(db, config);
      const settlementConfig = config.settlement;
      const lastEnded = parsed.positionals[0] ?? lastEndedCycle(new Date(), settlementConfig.cycleCutoffs).key;
      process.stderr.write(`closing cycle ${lastEnded} …\n`);
      try {
        const out = await svc.cycles.close(lastEnded);
        if (parsed.values.json) {
          process.stdout.write(`${JSON.stringify(out, null, 2)}\n`);
          return 0;
        }
        const c = out.cycle;
        process.stdout.write(
          `cycle ${c.key} (${c.starts_at} – ${c.ends_at}] ${out.closed_now ? 'closed now' : 'was closed at ' + c.closed_at}: ${c.status}\n`,
        );
        for (const b of c.banks) {
          const diff = b.difference
            ? ` difference credit ${b.difference.credit} debit ${b.difference.debit} lines ${b.difference.lines}`
            : '';
          process.stdout.write(
            `  ${b.bank_code.padEnd(12)} expected credit ${b.expected.credit} debit ${b.expected.debit} lines ${b.expected.lines}  ${b.status}${diff}\n`,
          );
        }
        const payouts = await svc.payouts.list({ cycleKey: c.key, limit: 200 });
        process.stdout.write(`  payouts: ${payouts.data.length}${payouts.next_cursor ? '+' : ''}\n`);
        return 0;
      } catch (e) {
        if (isAppError(e)) {
          process.stderr.write(`settle close-cycle: ${e.message}\n`);
          return 1;
        }
        throw e;
      }
    });
  },
};

/** `settle verify`: settlement's rows against the ledger (src/modules/settlement/settlement.verify.ts); exit 1 on a violation. */
async function verify(): Promise<number> {
  const { runSettlementVerify } = await import('../../modules/settlement/index.ts');
  const { createLedgerService } = await import('../../modules/ledger/index.ts');
  const report = await withDb((db) => runSettlementVerify(db, createLedgerService()));
  if (report.ok) {
    process.stdout.write(
      `settlement ok: ${report.checked.reversals} reversals, ${report.checked.payouts} payouts, ${report.checked.cycles} cycles agree with the ledger\n`,
    );
    return 0;
  }
  const v = report.violations[0];
  process.stderr.write(`settlement verify FAILED: ${v.invariant}: ${v.subject}: ${v.message}\n`);
  if (report.violations.length > 1) process.stderr.write(`(${report.violations.length - 1} more violation(s))\n`);
  return 1;
}

const CREDIT_STATUSES = ['legacy', 'due', 'pending', 'paid', 'failed'] as const;

/** `settle compensations`: compensation credits, oldest first (the refused ones: --status failed). */
async function listCompensations(argv: string[]): Promise<number> {
  let values: { status?: string; limit?: string };
  try {
    ({ values } = parseArgs({ args: argv, options: { status: { type: 'string' }, limit: { type: 'string' } } }));
  } catch (e) {
    throw new UsageError(`${(e as Error).message}\n${USAGE}`);
  }
  const status = values.status as (typeof CREDIT_STATUSES)[number] | undefined;
  if (status !== undefined && !CREDIT_STATUSES.includes(status)) throw new UsageError(USAGE);
  const limit = values.limit === undefined ? 100 : Number(values.limit);
  if (!Number.isSafeInteger(limit) || limit < 1 || limit > 10_000)
    throw new UsageError(`--limit must be 1-10000\n${USAGE}`);
  const rows = await withServices((s) => s.settlement.compensation.list({ status, limit }));
  for (const c of rows)
    process.stdout.write(
      `${c.payment_id} day ${String(c.day).padEnd(3)} ${String(c.amount).padStart(7)} paise  ${c.status.padEnd(7)} ${c.credit_ref ?? '-'}  ${c.bank.response_code ?? ''}${c.last_error ? `  ${c.last_error}` : ''}\n`,
    );
  process.stderr.write(`${rows.length} compensation credit(s)${rows.length === limit ? ' (more with --limit)' : ''}\n`);
  return 0;
}

/**
 * `settle retry-compensation`: sends again a credit the bank refused, to the payer's VPA, under a
 * new reference (the worker sends it). Another VPA is for the API only: a second operator must
 * approve it, and a command has no operator behind it.
 */
async function retryCompensation(argv: string[]): Promise<number> {
  let parsed: { values: { reason?: string; json?: boolean; vpa?: string }; positionals: string[] };
  try {
    parsed = parseArgs({
      args: argv,
      options: { reason: { type: 'string' }, json: { type: 'boolean' }, vpa: { type: 'string' } },
      allowPositionals: true,
    });
  } catch (e) {
    throw new UsageError(`${(e as Error).message}\n${USAGE}`);
  }
  const [paymentId, dayText] = parsed.positionals;
  if (parsed.positionals.length !== 2 || !parsed.values.reason || !/^[0-9]{1,6}$/.test(dayText))
    throw new UsageError(USAGE);
  if (parsed.values.vpa !== undefined) {
    process.stderr.write(
      "settle retry-compensation: a credit to another VPA needs a second operator's approval: an operator asks for it over the API (POST /v1/settlement/compensations/{payment_id}/{day}/retry with payee_vpa)\n",
    );
    return 1;
  }
  const { isAppError } = await import('../../platform/errors.ts');
  const { userInfo } = await import('node:os');
  try {
    const out = await withServices((s) =>
      s.settlement.retries.retry(
        { cli: userInfo().username },
        { paymentId, day: Number(dayText), reason: parsed.values.reason! },
      ),
    );
    if (parsed.values.json) process.stdout.write(`${JSON.stringify(out, null, 2)}\n`);
    else
      process.stdout.write(
        `compensation ${out.compensation.payment_id} day ${out.compensation.day}: ${out.compensation.status}, new reference ${out.compensation.credit_ref} (was ${out.retry.failed_credit_ref}); the worker sends it\n`,
      );
    return 0;
  } catch (e) {
    if (isAppError(e)) {
      process.stderr.write(`settle retry-compensation: ${e.code}: ${e.message}\n`);
      return 1;
    }
    throw e;
  }
}
