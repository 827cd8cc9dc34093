import { startTestGateway } from '../../src/modules/terminals/testkit.ts';
import type { TestApp } from './harness.ts';

// The terminal gateway (MQTT) in front of a test app's own services, so the records and
// payments it makes are the app's. A file of its own: only the terminal tests load the gateway.

export type TestGateway = Awaited<ReturnType<typeof startTestGateway>>;

export function startAppGateway(
  t: TestApp,
  opts: Omit<Parameters<typeof startTestGateway>[0], 'db' | 'payments' | 'rewards' | 'audit'> = {},
): Promise<TestGateway> {
  return startTestGateway({
    db: t.db,
    payments: t.app.services.payments,
    rewards: t.app.services.rewards,
    audit: t.app.services.audit,
    ...opts,
  });
}
