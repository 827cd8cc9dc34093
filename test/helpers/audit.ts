import { randomBytes } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Clock } from '../../src/platform/clock.ts';
import { loadConfig } from '../../src/config.ts';
import type { Db } from '../../src/platform/db.ts';
import { createLogger } from '../../src/platform/log.ts';
import { auditKeysFromSeed, createAuditService } from '../../src/modules/audit/index.ts';

// An audit service over a test database, with a key of its own and a data directory of its own
// (`dir`, or a fresh temporary one): the setup the audit tamper and export tests share.

export function testAuditService(o: {
  db: Db;
  clock: Clock;
  dir?: string;
  store?: Parameters<typeof createAuditService>[0]['store'];
}) {
  return createAuditService({
    db: o.db,
    config: loadConfig({ NODE_ENV: 'test', TILLPOINT_DATA_DIR: o.dir ?? mkdtempSync(join(tmpdir(), 'tp-audit-')) }),
    clock: o.clock,
    logger: createLogger({ level: 'silent' }),
    keys: auditKeysFromSeed(randomBytes(32)),
    ...(o.store ? { store: o.store } : {}),
  });
}
