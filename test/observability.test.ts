import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { withFreePorts } from '../src/platform/freePort.ts';
import { dataDirFromTemplate } from './helpers/cliDb.ts';
import { bankSimArgs, spawnUntil, type StartedProcess } from './helpers/processes.ts';

// The observability kit, tested for real:
// - `promtool check rules` and `promtool test rules` (a unit test per alert, in
//   deploy/observability/tests/);
// - a real Prometheus scraping a running Tillpoint (`serve --role all`, the bank simulator as
//   its own process) with the real rules: the simulator is killed, payments fail, and the
//   per-bank success alert goes pending;
// - every Grafana panel's PromQL is sent to that Prometheus (a parse error is a 400) and
//   names only metrics that /metrics exposes or the rules record.
// Needs Debian's `prometheus` package (promtool and prometheus); skipped without it, unless
// CI_REQUIRE_GATEWAY=1 (set by .ci/run), where a missing binary fails the suite.

const ROOT = join(import.meta.dirname, '..');
const OBS = join(ROOT, 'deploy', 'observability');
const RULES = join(OBS, 'rules', 'tillpoint.rules.yml');
const BIN = join(ROOT, 'bin', 'tillpoint.mjs');

const has = (cmd: string) => spawnSync(cmd, ['--version'], { encoding: 'utf8' }).status === 0;
const missing = ['promtool', 'prometheus'].filter((c) => !has(c));
const skip =
  missing.length > 0 && process.env.CI_REQUIRE_GATEWAY !== '1'
    ? `needs ${missing.join(' and ')} (Debian: apt-get install prometheus); CI installs it and sets CI_REQUIRE_GATEWAY=1`
    : false;

function start(
  cmd: string,
  args: string[],
  env: Record<string, string>,
  ready: RegExp | (() => Promise<boolean>),
): Promise<StartedProcess> {
  return spawnUntil(cmd, args, { env: { ...process.env, LOG_LEVEL: 'warn', ...env }, ready, timeoutMs: 120_000 });
}

async function stop(child: ChildProcess | undefined) {
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  const done = new Promise((r) => child.once('exit', r));
  child.kill('SIGTERM');
  await done;
}

async function until<T>(what: string, fn: () => Promise<T | undefined>, ms = 120_000, everyMs = 100): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn().catch(() => undefined);
    if (v) return v;
    if (Date.now() > end) throw new Error(`not in time: ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/** promtool, without blocking this process (spawnSync would hold the tests beside it). */
function promtool(args: string[]): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn('promtool', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), 600_000);
    child.on('error', reject);
    child.on('close', (status) => {
      clearTimeout(timer);
      resolve({ status, stdout, stderr });
    });
  });
}

/** Metric names a PromQL expression reads (identifiers followed by a selector, a range or an operator). */
export function metricNamesIn(expr: string): string[] {
  const withoutStrings = expr.replace(/"(?:[^"\\]|\\.)*"/g, '""');
  const names = new Set<string>();
  for (const m of withoutStrings.matchAll(/\b([a-zA-Z_:][a-zA-Z0-9_:]*)\b(?!\s*\()/g)) {
    const name = m[1];
    if (
      /^(by|without|on|ignoring|group_left|group_right|and|or|unless|offset|bool|inf|nan|sum|min|max|avg|count|group|stddev|stdvar|topk|bottomk|quantile|count_values)$/i.test(
        name,
      )
    )
      continue;
    const before = withoutStrings.slice(0, m.index);
    // Label names inside {…} or by (…) are not metrics.
    if ((before.match(/\{/g)?.length ?? 0) > (before.match(/\}/g)?.length ?? 0)) continue;
    if (/\b(by|without|on|ignoring)\s*\([^)]*$/.test(before)) continue;
    if (/\[[^\]]*$/.test(before)) continue; // inside a range [5m]
    if (/^\d/.test(name)) continue;
    names.add(name);
  }
  return [...names];
}

// The promtool test (~10 s of promtool's CPU) and the real Prometheus (mostly waiting for its
// scrapes and evaluations) run side by side; the Prometheus tests still run one after another.
describe('observability: rules, a real Prometheus, dashboards', { skip, concurrency: 2 }, () => {
  test('promtool check rules and promtool test rules (a unit test per alert)', async () => {
    const check = await promtool(['check', 'rules', RULES]);
    assert.equal(check.status, 0, check.stdout + check.stderr);
    const tests = readdirSync(join(OBS, 'tests'))
      .filter((f) => f.endsWith('.test.yml'))
      .map((f) => join(OBS, 'tests', f));
    assert.ok(tests.length > 0);
    const run = await promtool(['test', 'rules', ...tests]);
    assert.equal(run.status, 0, run.stdout + run.stderr);
    // Every alert in the rules has at least one unit test that expects it to fire.
    const alerts = [...readFileSync(RULES, 'utf8').matchAll(/^\s*- alert: (\w+)/gm)].map((m) => m[1]);
    const testText = tests.map((f) => readFileSync(f, 'utf8')).join('\n');
    for (const a of alerts) {
      assert.match(
        testText,
        new RegExp(`alertname: ${a}\\n\\s+exp_alerts:\\n\\s+- exp_labels`),
        `no test expects ${a} to fire`,
      );
    }
  });

  describe('a real Prometheus scraping a running Tillpoint', { concurrency: 1 }, () => {
    let sim: ChildProcess | undefined;
    let app: ChildProcess | undefined;
    let prom: ChildProcess | undefined;
    let api = '';
    let promUrl = '';
    let demo: { api_url: string; api_key: string; terminal_ids: string[] };
    let metricsText = '';
    let ruleQueries: string[] = [];

    const call = async (method: string, path: string, body?: unknown) => {
      const r = await fetch(api + path, {
        method,
        headers: { authorization: `Bearer ${demo.api_key}`, 'content-type': 'application/json' },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
      return { status: r.status, body: (await r.json()) as any };
    };
    const promQuery = async (q: string) => {
      const r = await fetch(`${promUrl}/api/v1/query?query=${encodeURIComponent(q)}`);
      return { status: r.status, body: (await r.json()) as any };
    };

    before(async () => {
      const dir = mkdtempSync(join(tmpdir(), 'tillpoint-obs-'));
      // Not a first start: the database is the migrated test template (no initdb in the server).
      await dataDirFromTemplate(join(dir, 'data'));
      // Each listener on a fresh port again when its port was taken before it bound it.
      const secret = randomBytes(24).toString('hex');
      let simPort = '';
      sim = (
        await withFreePorts(1, ([p]) => {
          simPort = String(p);
          return start(process.execPath, [BIN, ...bankSimArgs(simPort)], { BANK_SIM_SECRET: secret }, /listening/);
        })
      ).child;
      let apiPort = '';
      app = (
        await withFreePorts(1, ([p]) => {
          apiPort = String(p);
          return start(
            process.execPath,
            [BIN, 'serve', '--role', 'all'],
            {
              TILLPOINT_DATA_DIR: join(dir, 'data'),
              PORT: apiPort,
              NODE_ENV: 'development',
              DATABASE_URL: '',
              BANK_SIM_URL: `http://127.0.0.1:${simPort}/sim`,
              BANK_SIM_SECRET: secret,
              EMBEDDED_BANK_SIM: 'false',
              BANK_TIMEOUT_MS: '2000',
              WORKER_INTERVAL_MS: '500',
              MQTT_PORT: '0',
              MQTTS_PORT: '0',
            },
            /Demo:/,
          );
        })
      ).child;
      demo = JSON.parse(readFileSync(join(dir, 'data', 'demo.json'), 'utf8'));
      api = demo.api_url;
      // Test-only Prometheus settings: scrape and evaluate every second, with the real rules file.
      writeFileSync(
        join(dir, 'prometheus.yml'),
        [
          'global:',
          '  scrape_interval: 1s',
          '  evaluation_interval: 1s',
          'rule_files:',
          `  - ${RULES}`,
          'scrape_configs:',
          '  - job_name: tillpoint',
          '    static_configs:',
          `      - targets: ['127.0.0.1:${apiPort}']`,
          '',
        ].join('\n'),
      );
      prom = (
        await withFreePorts(1, ([p]) => {
          promUrl = `http://127.0.0.1:${p}`;
          return start(
            'prometheus',
            [
              `--config.file=${join(dir, 'prometheus.yml')}`,
              `--storage.tsdb.path=${join(dir, `tsdb-${p}`)}`,
              `--web.listen-address=127.0.0.1:${p}`,
              '--log.level=warn',
            ],
            {},
            async () => (await fetch(`${promUrl}/-/ready`)).ok,
          );
        })
      ).child;
    });

    after(async () => {
      await stop(prom);
      await stop(app);
      await stop(sim);
    });

    test('Prometheus scrapes /metrics and the rules load', async () => {
      await until('target up', async () => {
        const r = await promQuery('up{job="tillpoint"}');
        return r.body.data.result[0]?.value[1] === '1' || undefined;
      });
      const rules = (await (await fetch(`${promUrl}/api/v1/rules`)).json()) as any;
      const loaded = rules.data.groups.flatMap((g: any) => g.rules.map((r: any) => r.name));
      assert.ok(loaded.includes('TillpointBankSuccessBudgetBurnFast'));
      assert.ok(
        rules.data.groups.every((g: any) => g.rules.every((r: any) => r.health !== 'err')),
        JSON.stringify(rules.data.groups.flatMap((g: any) => g.rules.filter((r: any) => r.lastError))),
      );
      ruleQueries = rules.data.groups.flatMap((g: any) => g.rules.map((r: any) => r.query as string));
    });

    test('payments succeed while the bank is up', async () => {
      for (let i = 0; i < 3; i++) {
        const c = await call('POST', '/v1/payments', {
          terminal_id: demo.terminal_ids[1],
          amount: 1000 + i,
          currency: 'INR',
          method: 'upi_collect',
          payer_vpa: 'asha@oksbi',
        });
        assert.equal(c.status, 201, JSON.stringify(c.body));
        await until(
          'collect succeeded',
          async () => (await call('GET', `/v1/payments/${c.body.id}`)).body.status === 'succeeded' || undefined,
        );
      }
      await until('success counted', async () => {
        const r = await promQuery('sum(tillpoint_payments_completed_total{bank="SIMBANK",outcome="succeeded"})');
        return Number(r.body.data.result[0]?.value[1] ?? 0) >= 3 || undefined;
      });
      const none = await promQuery('ALERTS{alertname="TillpointBankSuccessBudgetBurnFast"}');
      assert.deepEqual(none.body.data.result, []);
    });

    test('the bank simulator goes down: technical declines, and the success-rate alert goes pending', async () => {
      await stop(sim);
      // Keep creating while we wait: each fails fast (connection refused before anything was sent),
      // so the payment is failed U28, a technical decline.
      let failed = 0;
      const alert = await until(
        'TillpointBankSuccessBudgetBurnFast pending',
        async () => {
          const c = await call('POST', '/v1/payments', {
            terminal_id: demo.terminal_ids[1],
            amount: 700,
            currency: 'INR',
            method: 'upi_collect',
            payer_vpa: 'asha@oksbi',
          });
          assert.equal(c.status, 503, JSON.stringify(c.body));
          assert.equal(c.body.error.code, 'bank_unavailable');
          failed++;
          const r = (await (await fetch(`${promUrl}/api/v1/alerts`)).json()) as any;
          return r.data.alerts.find(
            (a: any) => a.labels.alertname === 'TillpointBankSuccessBudgetBurnFast' && a.labels.bank === 'SIMBANK',
          );
          // A payment every half second while Prometheus (1 s scrapes and evaluations) catches up.
        },
        120_000,
        500,
      );
      assert.ok(failed >= 2);
      assert.equal(alert.state, 'pending'); // `for: 2m`: pending first, firing after two minutes
      assert.equal(alert.labels.severity, 'page');
      const ratio = await promQuery('tillpoint_bank:payments_technical_decline:ratio_rate5m{bank="SIMBANK"}');
      assert.ok(Number(ratio.body.data.result[0].value[1]) > 0.144, JSON.stringify(ratio.body));
      metricsText = await (await fetch(`${api}/metrics`)).text();
    });

    test('every dashboard panel parses in Prometheus and reads only metrics that exist', async () => {
      metricsText ||= await (await fetch(`${api}/metrics`)).text();
      const exposed = new Set<string>(['up']);
      for (const m of metricsText.matchAll(/^# TYPE (\S+) (\w+)$/gm)) {
        exposed.add(m[1]);
        if (m[2] === 'histogram') for (const s of ['_bucket', '_count', '_sum']) exposed.add(m[1] + s);
      }
      for (const m of readFileSync(RULES, 'utf8').matchAll(/^\s*- record: (\S+)/gm)) exposed.add(m[1]);
      // The pool gauges exist on PostgreSQL only (PGlite, used here, is one in-process
      // connection); they must at least be defined where the platform registers its metrics.
      const platformMetrics = readFileSync(join(ROOT, 'src', 'platform', 'platform.metrics.ts'), 'utf8');
      for (const name of ['tillpoint_db_pool_connections', 'tillpoint_db_pool_waiting_requests']) {
        assert.ok(!exposed.has(name) && platformMetrics.includes(`name: '${name}'`), name);
        exposed.add(name);
      }
      const dir = join(OBS, 'grafana', 'dashboards');
      const files = readdirSync(dir).filter((f) => f.endsWith('.json'));
      assert.deepEqual(files.sort(), [
        'overview.json',
        'payments-by-bank.json',
        'rewards.json',
        'security.json',
        'terminals.json',
      ]);
      let panels = 0;
      for (const f of files) {
        const d = JSON.parse(readFileSync(join(dir, f), 'utf8'));
        assert.ok(d.uid && d.title, f);
        for (const p of d.panels) {
          for (const t of p.targets) {
            panels++;
            // Grafana variables become a match-anything regex for the check.
            const expr = String(t.expr).replaceAll('$bank', '.*');
            const r = await promQuery(expr);
            assert.equal(r.status, 200, `${f} "${p.title}": ${JSON.stringify(r.body)}`);
            for (const name of metricNamesIn(expr))
              assert.ok(exposed.has(name), `${f} "${p.title}" reads ${name}, which /metrics does not expose`);
          }
        }
      }
      assert.ok(panels > 30);
      // The alert and recording rules (as Prometheus loaded them) read only exposed metrics too.
      assert.ok(ruleQueries.length > 20);
      for (const q of ruleQueries) {
        for (const name of metricNamesIn(q))
          assert.ok(exposed.has(name), `a rule reads ${name}, which /metrics does not expose: ${q}`);
      }
    });
  });
});
