import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { parse as parseYaml, parseAllDocuments } from 'yaml';
// @ts-expect-error: a plain .mjs script without type declarations
import { prometheusRule, RULES_FILE, OUTPUT_FILE } from '../deploy/k8s/gen-prometheusrule.mjs';
import { FILE_SETTINGS, loadConfig } from '../src/config.ts';
import { readdirSync, readFileSync, statSync } from 'node:fs';

// deploy/k8s: every overlay is rendered with `kubectl kustomize`, every object is validated
// against the Kubernetes schemas (kubernetes-models, and the External Secrets and Prometheus
// Operator CRD models), then the deployment policies are checked on what would be applied.
// The schemas check types, formats and required fields; they do not reject unknown fields
// (the pipeline's server-side dry run does: deploy/README.md).

const K8S = join(import.meta.dirname, '..', 'deploy', 'k8s');
const OVERLAYS = ['dev', 'prod'];
type Obj = {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  spec?: any;
  data?: Record<string, string>;
};

const kubectl = spawnSync('kubectl', ['version', '--client'], { encoding: 'utf8' });
const skip =
  kubectl.status === 0 ? false : process.env.CI ? false : 'kubectl is not installed (Debian: kubernetes-client)';

function render(overlay: string): Obj[] {
  const r = spawnSync('kubectl', ['kustomize', join(K8S, 'overlays', overlay)], {
    encoding: 'utf8',
    maxBuffer: 32 * 1024 * 1024,
  });
  assert.equal(r.status, 0, `kubectl kustomize ${overlay}: ${r.stderr}`);
  return parseAllDocuments(r.stdout)
    .map((d) => {
      assert.equal(d.errors.length, 0, String(d.errors[0]));
      return d.toJSON() as Obj;
    })
    .filter(Boolean);
}

/** The model class for an object: core and built-in groups, External Secrets, Prometheus Operator. */
async function model(o: Obj): Promise<new (data: unknown) => { validate(): void }> {
  const [group, version] = o.apiVersion.includes('/') ? o.apiVersion.split('/') : ['', o.apiVersion];
  const mod =
    group === 'external-secrets.io'
      ? `@kubernetes-models/external-secrets/external-secrets.io/${version}`
      : group === 'monitoring.coreos.com'
        ? `@kubernetes-models/prometheus-operator/monitoring.coreos.com/${version}`
        : `kubernetes-models/${group ? `${group}/` : ''}${version}`;
  const m = await import(mod);
  assert.ok(m[o.kind], `no schema for ${o.apiVersion} ${o.kind}`);
  return m[o.kind];
}

const selects = (selector: any, labels: Record<string, string> = {}) => {
  if (!selector) return false;
  const ml = selector.matchLabels ?? {};
  if (!Object.entries(ml).every(([k, v]) => labels[k] === v)) return false;
  return (selector.matchExpressions ?? []).every((e: any) =>
    e.operator === 'In' ? e.values.includes(labels[e.key]) : e.operator === 'Exists' ? e.key in labels : false,
  );
};
/** The application's source, to check that settings given to it exist. */
const SOURCE = (function read(dir: string): string {
  return readdirSync(dir)
    .map((n) =>
      statSync(join(dir, n)).isDirectory()
        ? read(join(dir, n))
        : n.endsWith('.ts') && !n.endsWith('.test.ts')
          ? readFileSync(join(dir, n), 'utf8')
          : '',
    )
    .join('\n');
})(join(import.meta.dirname, '..', 'src'));
const podSpecs = (objs: Obj[]) =>
  objs
    .filter((o) => o.kind === 'Deployment' || o.kind === 'Job')
    .map((o) => ({ o, pod: o.spec.template.spec, labels: o.spec.template.metadata.labels }));

for (const overlay of OVERLAYS) {
  describe(`deploy/k8s overlay ${overlay}`, { skip }, () => {
    const objs = skip ? [] : render(overlay);
    const of = (kind: string) => objs.filter((o) => o.kind === kind);

    test('every object is valid against its schema', async () => {
      assert.ok(objs.length > 30, `rendered ${objs.length} objects`);
      for (const o of objs) {
        const M = await model(o);
        try {
          new M(o).validate();
        } catch (e) {
          assert.fail(`${o.kind}/${o.metadata.name}: ${(e as Error).message}`);
        }
      }
    });

    test('the three roles, each with a Service, an autoscaler, a disruption budget and network policies', () => {
      const deployments = of('Deployment');
      assert.deepEqual(deployments.map((d) => d.metadata.name).sort(), [
        'tillpoint-api',
        'tillpoint-terminal-gateway',
        'tillpoint-worker',
      ]);
      const denyAll = of('NetworkPolicy').find(
        (p) =>
          Object.keys(p.spec.podSelector).length === 0 &&
          p.spec.policyTypes.includes('Ingress') &&
          p.spec.policyTypes.includes('Egress') &&
          !p.spec.ingress &&
          !p.spec.egress,
      );
      assert.ok(denyAll, 'a default-deny NetworkPolicy for all pods, in and out');
      for (const d of deployments) {
        const labels = d.spec.template.metadata.labels;
        const role = labels['app.kubernetes.io/component'];
        assert.deepEqual(d.spec.template.spec.containers[0].args, ['serve', '--role', role]);
        assert.ok(
          of('PodDisruptionBudget').some((p) => selects(p.spec.selector, labels)),
          `${d.metadata.name} has a PodDisruptionBudget`,
        );
        assert.ok(
          of('HorizontalPodAutoscaler').some(
            (h) => h.spec.scaleTargetRef.kind === 'Deployment' && h.spec.scaleTargetRef.name === d.metadata.name,
          ),
          `${d.metadata.name} has an HPA`,
        );
        assert.ok(
          of('Service').some((s) => selects({ matchLabels: s.spec.selector }, labels)),
          `${d.metadata.name} has a Service`,
        );
        const own = of('NetworkPolicy').filter(
          (p) => Object.keys(p.spec.podSelector).length > 0 && selects(p.spec.podSelector, labels),
        );
        assert.ok(own.length > 0, `${d.metadata.name} has a NetworkPolicy of its own`);
        const zones = d.spec.template.spec.topologySpreadConstraints?.find(
          (t: any) => t.topologyKey === 'topology.kubernetes.io/zone',
        );
        assert.equal(zones?.whenUnsatisfiable, 'DoNotSchedule', `${d.metadata.name} spreads across zones`);
        assert.ok(selects(zones.labelSelector, labels));
      }
      // Egress is explicit: every egress rule names its ports.
      for (const p of of('NetworkPolicy'))
        for (const e of p.spec.egress ?? [])
          assert.ok(e.ports?.length && e.to?.length, `${p.metadata.name}: egress names destinations and ports`);
      const egressPorts = (role: string) =>
        of('NetworkPolicy')
          .filter(
            (p) =>
              p.spec.egress &&
              selects(p.spec.podSelector, {
                'app.kubernetes.io/name': 'tillpoint',
                'app.kubernetes.io/component': role,
              }),
          )
          .flatMap((p) => p.spec.egress.flatMap((e: any) => e.ports.map((x: any) => x.port)));
      assert.deepEqual(
        [...new Set(egressPorts('api'))].sort(),
        [443, 5432, 53, 6379].sort(),
        'api: DNS, PostgreSQL, Redis, HTTPS (banks, KMS, Secrets Manager)',
      );
      assert.ok(egressPorts('terminal-gateway').includes(8883), 'the gateway reaches the MQTT broker');
      assert.ok(!egressPorts('worker').includes(8883) && !egressPorts('worker').includes(6379), 'the worker does not');
    });

    test('pods are restricted: non-root, read-only root, no capabilities, seccomp, limits, probes, pinned images', () => {
      const ns = of('Namespace')[0];
      assert.equal(ns.metadata.labels?.['pod-security.kubernetes.io/enforce'], 'restricted');
      const specs = podSpecs(objs);
      assert.ok(
        specs.some((s) => s.o.kind === 'Job'),
        'the migration Job is checked too',
      );
      for (const { o, pod } of specs) {
        assert.equal(pod.securityContext?.runAsNonRoot, true, `${o.metadata.name}: runAsNonRoot`);
        assert.ok(pod.securityContext.runAsUser > 0);
        assert.equal(pod.securityContext.seccompProfile?.type, 'RuntimeDefault');
        assert.notEqual(pod.automountServiceAccountToken, true);
        for (const c of [...(pod.initContainers ?? []), ...pod.containers]) {
          const where = `${o.metadata.name}/${c.name}`;
          const sc = c.securityContext ?? {};
          assert.equal(sc.readOnlyRootFilesystem, true, `${where}: read-only root`);
          assert.equal(sc.allowPrivilegeEscalation, false, `${where}: no privilege escalation`);
          assert.notEqual(sc.privileged, true);
          assert.deepEqual(sc.capabilities?.drop, ['ALL'], `${where}: drops all capabilities`);
          assert.ok(!sc.capabilities?.add?.length, `${where}: adds none`);
          assert.notEqual(sc.runAsUser, 0);
          for (const r of ['cpu', 'memory']) {
            assert.ok(c.resources?.limits?.[r], `${where}: ${r} limit`);
            assert.ok(c.resources?.requests?.[r], `${where}: ${r} request`);
          }
          assert.match(
            c.image,
            /^[\w.-]+\.dkr\.ecr\.[\w-]+\.amazonaws\.com\/[\w/-]+:[\w.-]+$/,
            `${where}: an ECR image with a tag`,
          );
          assert.doesNotMatch(c.image, /:latest$/, `${where}: no latest tag`);
          if (o.kind === 'Deployment') {
            for (const p of ['startupProbe', 'readinessProbe', 'livenessProbe'])
              assert.ok(c[p]?.httpGet, `${where}: ${p}`);
            assert.equal(c.readinessProbe.httpGet.path, '/readyz');
          }
        }
        // Writable places are mounted, size-limited volumes (the root filesystem is read-only).
        const tmp = pod.volumes.find((v: any) => v.name === 'tmp');
        assert.ok(tmp?.emptyDir?.sizeLimit, `${o.metadata.name}: /tmp is a size-limited emptyDir`);
      }
    });

    test('graceful termination covers the preStop pause and the longest drain', () => {
      const config = of('ConfigMap').find((c) => c.metadata.name.startsWith('tillpoint-config'))!;
      const requestTimeout = Number(config.data!.HTTP_REQUEST_TIMEOUT_MS ?? 30_000) / 1000;
      const bankTimeout = Number(config.data!.BANK_TIMEOUT_MS ?? 15_000) / 1000;
      // The process's own bound on its stop (SIGTERM): long enough for the longest drain, short
      // enough to exit before the kubelet's SIGKILL.
      const shutdownTimeout = Number(config.data!.SHUTDOWN_TIMEOUT_SECONDS ?? 25);
      assert.ok(
        shutdownTimeout >= Math.max(requestTimeout, bankTimeout),
        `SHUTDOWN_TIMEOUT_SECONDS ${shutdownTimeout} cuts a drain short`,
      );
      for (const d of of('Deployment')) {
        const pod = d.spec.template.spec;
        const pause = pod.containers[0].lifecycle?.preStop?.sleep?.seconds ?? 0;
        assert.ok(pause >= 5, `${d.metadata.name}: a preStop pause lets endpoints and the load balancer let go first`);
        assert.ok(
          pod.terminationGracePeriodSeconds >= pause + Math.max(requestTimeout, bankTimeout) + 5,
          `${d.metadata.name}: grace ${pod.terminationGracePeriodSeconds}s < ${pause}s + drain`,
        );
        assert.ok(
          pod.terminationGracePeriodSeconds >= pause + shutdownTimeout + 5,
          `${d.metadata.name}: grace ${pod.terminationGracePeriodSeconds}s < ${pause}s + SHUTDOWN_TIMEOUT_SECONDS`,
        );
      }
      const ingress = of('Ingress')[0];
      const dereg = /deregistration_delay\.timeout_seconds=(\d+)/.exec(
        ingress.metadata.annotations!['alb.ingress.kubernetes.io/target-group-attributes'],
      )!;
      assert.ok(
        Number(dereg[1]) <= of('Deployment')[0].spec.template.spec.containers[0].lifecycle.preStop.sleep.seconds,
        'the load balancer deregisters within the pause',
      );
    });

    test('one way in: the Ingress (HTTPS, WAF, certificate); no LoadBalancer or NodePort Service', () => {
      for (const s of of('Service'))
        assert.equal(s.spec.type ?? 'ClusterIP', 'ClusterIP', `${s.metadata.name} is internal`);
      const [ing] = of('Ingress');
      const a = ing.metadata.annotations!;
      assert.equal(a['alb.ingress.kubernetes.io/listen-ports'], '[{"HTTPS": 443}]');
      assert.equal(a['alb.ingress.kubernetes.io/backend-protocol'], 'HTTPS', 're-encrypted to the pods');
      assert.match(a['alb.ingress.kubernetes.io/certificate-arn'], /^arn:aws:acm:/);
      assert.match(a['alb.ingress.kubernetes.io/wafv2-acl-arn'], /^arn:aws:wafv2:/);
      assert.match(a['alb.ingress.kubernetes.io/ssl-policy'], /TLS13/);
      assert.equal(ing.spec.tls[0].hosts[0], ing.spec.rules[0].host);
    });

    test('secrets come from AWS Secrets Manager through External Secrets, mounted as files', () => {
      assert.equal(of('Secret').length, 0, 'no Secret object in the manifests');
      const made = new Set(of('ExternalSecret').map((e) => e.spec.target.name));
      const store = of('SecretStore')[0];
      assert.equal(store.spec.provider.aws.service, 'SecretsManager');
      const sa = of('ServiceAccount').find(
        (s) => s.metadata.name === store.spec.provider.aws.auth.jwt.serviceAccountRef.name,
      )!;
      assert.match(
        sa.metadata.annotations?.['eks.amazonaws.com/role-arn'] ?? '',
        /^arn:aws:iam::\d{12}:role\//,
        'the store reads as an IRSA role',
      );
      for (const { o, pod } of podSpecs(objs)) {
        for (const v of pod.volumes)
          if (v.secret)
            assert.ok(
              made.has(v.secret.secretName),
              `${o.metadata.name}: volume ${v.name} is an ExternalSecret's target`,
            );
        for (const c of pod.containers)
          for (const e of c.envFrom ?? []) if (e.secretRef) assert.ok(made.has(e.secretRef.name));
      }
    });

    test('the migration Job runs `migrate` before the rollout, and Prometheus scrapes every role', () => {
      const [job] = of('Job');
      assert.deepEqual(job.spec.template.spec.containers[0].args, ['migrate']);
      assert.equal(job.spec.template.spec.restartPolicy, 'Never');
      assert.equal(job.metadata.annotations?.['argocd.argoproj.io/hook'], 'PreSync');
      assert.ok(
        of('NetworkPolicy').some(
          (p) =>
            p.spec.egress?.some((e: any) => e.ports.some((x: any) => x.port === 5432)) &&
            selects(p.spec.podSelector, job.spec.template.metadata.labels),
        ),
        'the Job may reach PostgreSQL',
      );
      const [sm] = of('ServiceMonitor');
      assert.deepEqual(sm.spec.namespaceSelector.matchNames, [of('Namespace')[0].metadata.name]);
      for (const s of of('Service')) {
        assert.ok(selects(sm.spec.selector, s.metadata.labels), `${s.metadata.name} is scraped`);
        assert.ok(s.spec.ports.some((p: any) => p.name === sm.spec.endpoints[0].port));
      }
    });

    test('the PrometheusRule carries exactly the groups of deploy/observability/rules, selected like the ServiceMonitor', () => {
      const rules = of('PrometheusRule');
      assert.equal(rules.length, 1);
      const [rule] = rules;
      // Validated against the Prometheus Operator model with every other object above; here the content.
      assert.deepEqual(
        rule.spec.groups,
        parseYaml(readFileSync(RULES_FILE, 'utf8')).groups,
        'spec.groups equals the rules file promtool tests',
      );
      assert.ok(rule.spec.groups.length > 0);
      assert.equal(rule.metadata.namespace, of('Namespace')[0].metadata.name);
      assert.equal(
        rule.metadata.labels?.release,
        of('ServiceMonitor')[0].metadata.labels?.release,
        'the operator picks up rules and monitors alike',
      );
    });

    test('the rendered configuration starts the app in production mode', () => {
      const config = of('ConfigMap').find((c) => c.metadata.name.startsWith('tillpoint-config'))!;
      const dir = mkdtempSync(join(tmpdir(), 'tp-k8s-secrets-'));
      const env: Record<string, string> = {};
      for (const [k, v] of Object.entries(config.data!)) env[k] = v.replace('/var/run/secrets/tillpoint', dir);
      for (const f of ['AUDIT_SIGNING_KEY', 'MFA_ENCRYPTION_KEY', 'REWARDS_CUSTOMER_KEY'])
        writeFileSync(join(dir, f), randomBytes(32).toString('base64'));
      writeFileSync(join(dir, 'REDIS_URL'), 'rediss://:token@redis.internal:6379');
      // AWS credentials as EKS's pod identity webhook injects them for the annotated ServiceAccount (IRSA).
      for (const sa of of('ServiceAccount').filter((s) => s.metadata.name !== 'tillpoint-external-secrets')) {
        assert.match(
          sa.metadata.annotations?.['eks.amazonaws.com/role-arn'] ?? '',
          /^arn:aws:iam::\d{12}:role\//,
          `${sa.metadata.name} has an IRSA role`,
        );
      }
      const c = loadConfig({
        ...env,
        AWS_WEB_IDENTITY_TOKEN_FILE: '/var/run/secrets/eks.amazonaws.com/serviceaccount/token',
        AWS_ROLE_ARN: 'arn:aws:iam::111122223333:role/tillpoint-prod-api',
      });
      assert.equal(c.mode, 'production');
      assert.equal(c.tls.mode, 'files');
      assert.match(c.mqtt.url!, /^mqtts:/);
      assert.equal(c.mqtt.port, undefined);
      assert.equal(c.embeddedBankSim, false);
      assert.ok(c.databaseUrl!.includes('sslmode=verify-full'));
      assert.equal(c.secrets.provider, 'files');
      assert.equal(c.healthPort, 9464);
      assert.equal(c.keys.provider, 'aws-kms');
      assert.equal(c.audit.export.target, 's3');
    });

    test('every setting in the ConfigMap is one the app reads (no typo goes unnoticed)', () => {
      const config = of('ConfigMap').find((c) => c.metadata.name.startsWith('tillpoint-config'))!;
      for (const k of Object.keys(config.data!)) {
        const name =
          k.endsWith('_FILE') && (FILE_SETTINGS as readonly string[]).includes(k.slice(0, -5)) ? k.slice(0, -5) : k;
        if (name === 'TMPDIR') continue; // read by Node itself (os.tmpdir), for tsx's cache
        assert.ok(SOURCE.includes(name), `${k} is not read anywhere in src/`);
      }
    });

    if (overlay === 'prod') {
      test('production runs three replicas at least, in every zone', () => {
        for (const d of of('Deployment')) assert.ok(d.spec.replicas >= 3, d.metadata.name);
        for (const h of of('HorizontalPodAutoscaler'))
          assert.ok(h.spec.minReplicas >= 3 && h.spec.maxReplicas > h.spec.minReplicas, h.metadata.name);
      });
    }
  });
}

test('deploy/k8s/base/prometheusrule.yaml is what gen-prometheusrule.mjs writes from the rules file (not stale)', () => {
  assert.equal(
    readFileSync(OUTPUT_FILE, 'utf8'),
    prometheusRule(readFileSync(RULES_FILE, 'utf8')),
    'stale: run node deploy/k8s/gen-prometheusrule.mjs',
  );
});

test('gen-prometheusrule.mjs: a changed rules file makes a different PrometheusRule, and --check accepts the committed copy', () => {
  const rulesText = readFileSync(RULES_FILE, 'utf8');
  const changed = rulesText.replace(/for: 2m/, 'for: 3m');
  assert.notEqual(changed, rulesText);
  assert.deepEqual(parseYaml(prometheusRule(changed)).spec.groups, parseYaml(changed).groups);
  assert.notEqual(prometheusRule(changed), readFileSync(OUTPUT_FILE, 'utf8'));
  assert.throws(() => prometheusRule('record: x\n'), /no groups/);
  const script = join(import.meta.dirname, '..', 'deploy', 'k8s', 'gen-prometheusrule.mjs');
  const check = spawnSync(process.execPath, [script, '--check'], { encoding: 'utf8' });
  assert.equal(check.status, 0, check.stderr);
});
