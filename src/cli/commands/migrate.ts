import { migrate as applyMigrations } from '../../platform/migrate.ts';
import { loadConfig } from '../../config.ts';
import { openDb } from '../../platform/db.ts';
import type { Command } from '../command.ts';

export const migrate: Command = {
  name: 'migrate',
  usage: 'migrate',
  summary: 'Apply database migrations and exit (safe to run from several processes at once).',
  async run() {
    const config = loadConfig();
    const db = await openDb({
      databaseUrl: config.databaseUrl,
      dataDir: config.dataDir,
      poolSize: 1,
      create: true,
      command: 'migrate',
    });
    try {
      const applied = await applyMigrations(db);
      process.stdout.write(applied.length ? `applied ${applied.join(', ')}\n` : 'migrations up to date\n');
      return 0;
    } finally {
      await db.close();
    }
  },
};
