import { loadConfig, type Config } from '../config.ts';
import { openDb, type Db } from '../platform/db.ts';
import { createLogger, type Logger } from '../platform/log.ts';
import { migrate } from '../platform/migrate.ts';
import { createSecretStore, createSecretsProvider, type SecretStore } from '../platform/secrets.ts';

// A `tillpoint` subcommand. Each lives in its own file under commands/ and is listed in
// commands/index.ts; `help` is generated from the list.

export interface Command {
  name: string;
  /** One or more usage lines, shown by `tillpoint help`. */
  usage: string;
  summary: string;
  /** Exit code, or undefined for long-running commands that keep the process alive. */
  run(argv: string[]): Promise<number | undefined>;
}

/** A mistake in how a command was called: main prints the usage and exits 2. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

/**
 * Opens the configured database (migrated), runs `fn`, closes it. With the embedded database
 * (no DATABASE_URL) beside a running server, the statements go through that server's admin socket
 * (src/platform/embedded.ts); with no database in the data directory it refuses and creates nothing.
 */
export async function withDb<T>(fn: (db: Db, config: Config) => Promise<T>): Promise<T> {
  const config = loadConfig();
  const db = await openDb({ databaseUrl: config.databaseUrl, dataDir: config.dataDir, poolSize: 2 });
  try {
    await migrate(db);
    return await fn(db, config);
  } finally {
    await db.close();
  }
}

/** What withServerDb() hands a command: the configuration, a logger, the secret store and the database. */
export interface ServerDb {
  config: Config;
  logger: Logger;
  /** The secret store as the server has it (SECRETS_*): the vault's key manager reads from it. */
  secrets: SecretStore;
  db: Db;
}

/**
 * Opens the configured database the way a server does, for commands that set up the vault or the
 * audit trail beside it (`import`, `keys`, `payouts`): the password from DATABASE_PASSWORD_SECRET
 * through the secret store when that is set, the database migrated. Runs `fn`, then stops the
 * secret store and closes the database, whatever `fn` did.
 */
export async function withServerDb<T>(
  fn: (s: ServerDb) => Promise<T>,
  opts: { config?: Config; logger?: Logger } = {},
): Promise<T> {
  const config = opts.config ?? loadConfig();
  const logger = opts.logger ?? createLogger({ level: process.env.LOG_LEVEL ?? 'warn' });
  const secrets = createSecretStore(createSecretsProvider(config.secrets), {
    refreshMs: 60_000,
    overlapMs: config.secrets.overlapSeconds * 1000,
    logger,
  });
  try {
    const dbPassword = config.databasePasswordSecret
      ? await secrets.watch(config.databasePasswordSecret, 'DATABASE_PASSWORD_SECRET')
      : undefined;
    const db = await openDb({
      databaseUrl: config.databaseUrl,
      dataDir: config.dataDir,
      poolSize: 2,
      password: dbPassword && (() => dbPassword.current()),
    });
    try {
      await migrate(db);
      return await fn({ config, logger, secrets, db });
    } finally {
      await db.close();
    }
  } finally {
    secrets.stop();
  }
}

/**
 * `fn` with the module services exactly as the API has them (src/app.ts createServices: one
 * wiring), for commands that act through a service (a flagged payment a bank file settles moves
 * through the payments service with its hooks). A command makes no bank calls of its own.
 */
export async function withServices<T>(
  fn: (s: Awaited<ReturnType<typeof import('../app.ts').createServices>>) => Promise<T>,
): Promise<T> {
  return withServerDb(async ({ config, logger, secrets, db }) => {
    const { createServices } = await import('../app.ts');
    const { createMetrics } = await import('../metrics.ts');
    const { systemClock } = await import('../platform/clock.ts');
    const services = await createServices({
      db,
      config,
      logger,
      clock: systemClock,
      metrics: createMetrics(),
      secrets,
      opts: {},
    });
    try {
      return await fn(services);
    } finally {
      services.vault.close();
    }
  });
}

/**
 * Keeps a long-running command alive until SIGINT/SIGTERM, then runs `stop` once and exits: 0 when
 * it finished, 1 when it failed or did not finish within `timeoutMs` (the process must be gone
 * before the orchestrator's grace period ends and it sends SIGKILL). A second signal exits at once.
 */
export function onShutdown(stop: () => Promise<void>, opts: { timeoutMs?: number; onTimeout?: () => void } = {}) {
  let stopping = false;
  const handler = async () => {
    if (stopping) {
      process.exit(1);
    }
    stopping = true;
    let timer: NodeJS.Timeout | undefined;
    const outcome = await Promise.race([
      stop().then(
        () => 'done' as const,
        () => 'failed' as const,
      ),
      new Promise<'timed_out'>((r) => {
        timer = setTimeout(() => r('timed_out'), opts.timeoutMs ?? 25_000);
      }),
    ]);
    clearTimeout(timer);
    if (outcome === 'timed_out') opts.onTimeout?.();
    process.exit(outcome === 'done' ? 0 : 1);
  };
  process.on('SIGINT', () => void handler());
  process.on('SIGTERM', () => void handler());
}
