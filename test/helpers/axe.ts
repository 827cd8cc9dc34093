import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import type { Page } from 'playwright-core';

// The console's accessibility check, shared by the browser tests.

const require = createRequire(import.meta.url);
const AXE = readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8');

/**
 * axe-core, run inside the page (evaluated, not injected as a script tag, so the CSP stays
 * strict): fails naming each serious or critical violation on the page as it is now.
 */
export async function assertNoSeriousAxeViolations(p: Page, name: string) {
  const violations = await p.evaluate(async (src) => {
    if (!(window as any).axe) (0, eval)(src);
    const r = await (window as any).axe.run(document, { resultTypes: ['violations'] });
    return r.violations
      .filter((v: any) => v.impact === 'serious' || v.impact === 'critical')
      .map(
        (v: any) =>
          `${v.id}: ${v.help} (${v.nodes
            .map((n: any) => n.target.join(' '))
            .slice(0, 3)
            .join(', ')})`,
      );
  }, AXE);
  assert.deepEqual(violations, [], `axe on ${name}`);
}
