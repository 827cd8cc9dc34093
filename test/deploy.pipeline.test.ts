import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse as parseYaml, parseAllDocuments } from 'yaml';

// The delivery pipeline: the vulnerability gate run as the pipeline runs it (a process, on
// fixture reports in Trivy's, ECR's and npm audit's documented JSON formats: no scanner or
// advisory service is reachable here), and the workflow, buildspec and deploy script checked
// for the steps the gate depends on.

const ROOT = join(import.meta.dirname, '..');
const FIX = join(ROOT, 'deploy', 'pipeline', 'fixtures');
const TODAY = '2026-12-02';

function gate(...args: string[]) {
  const r = spawnSync(
    process.execPath,
    ['--import', 'tsx', join(ROOT, 'deploy', 'pipeline', 'vuln-gate.ts'), '--today', TODAY, ...args],
    { encoding: 'utf8', cwd: ROOT },
  );
  return { code: r.status, out: r.stdout + r.stderr };
}
const fx = (n: string) => join(FIX, n);

describe('vulnerability gate', () => {
  test('a clean image and a clean npm audit pass (low findings do not block)', () => {
    const r = gate(
      '--image',
      fx('trivy-clean.json'),
      '--npm-audit',
      fx('npm-audit-clean.json'),
      '--allow-list',
      join(ROOT, 'deploy', 'pipeline', 'vuln-allowlist.json'),
    );
    assert.equal(r.code, 0, r.out);
    assert.match(r.out, /1 findings, 1 below high, 0 allowed, 0 blocking -> pass/);
  });

  test('a high finding in the image fails, naming it', () => {
    const r = gate('--image', fx('trivy-high.json'), '--npm-audit', fx('npm-audit-clean.json'));
    assert.equal(r.code, 1, r.out);
    assert.match(r.out, /BLOCKING HIGH +CVE-2025-0001 libssl3@3\.0\.16-1~deb12u1 \(image\)/);
    assert.match(r.out, /-> FAIL/);
  });

  test('a high advisory from npm audit fails; the package it reaches through is not counted twice', () => {
    const r = gate('--npm-audit', fx('npm-audit-high.json'));
    assert.equal(r.code, 1, r.out);
    assert.match(r.out, /BLOCKING HIGH +GHSA-abcd-1234-wxyz example-parser/);
    assert.equal(r.out.match(/BLOCKING/g)!.length, 1, 'the moderate one and the via-string do not block');
  });

  test("a critical finding in ECR's enhanced scan fails; suppressed findings are left out", () => {
    const r = gate('--image', fx('ecr-critical.json'));
    assert.equal(r.code, 1, r.out);
    assert.match(r.out, /BLOCKING CRITICAL CVE-2025-0002 zlib1g/);
    assert.doesNotMatch(r.out, /CVE-2025-0003/);
  });

  test('allow-listed findings pass, with the reason and expiry printed', () => {
    const r = gate(
      '--image',
      fx('trivy-high.json'),
      '--npm-audit',
      fx('npm-audit-high.json'),
      '--allow-list',
      fx('allow-high.json'),
    );
    assert.equal(r.code, 0, r.out);
    assert.match(
      r.out,
      /allowed +HIGH +CVE-2025-0001 libssl3.* until 2027-01-31, security@tillpoint\.in: Only the TLS client/,
    );
    assert.match(r.out, /allowed +HIGH +GHSA-abcd-1234-wxyz/);
    assert.match(r.out, /2 allowed, 0 blocking -> pass/);
  });

  test('an expired allow-list entry covers nothing, and says so', () => {
    const r = gate('--image', fx('trivy-high.json'), '--allow-list', fx('allow-expired.json'));
    assert.equal(r.code, 1, r.out);
    assert.match(r.out, /EXPIRED allow-list entry for CVE-2025-0001 \(expired 2026-10-31\)/);
    assert.match(r.out, /BLOCKING HIGH +CVE-2025-0001/);
    // The entry still covers on its last day.
    const lastDay = spawnSync(
      process.execPath,
      [
        '--import',
        'tsx',
        join(ROOT, 'deploy', 'pipeline', 'vuln-gate.ts'),
        '--today',
        '2026-10-31',
        '--image',
        fx('trivy-high.json'),
        '--allow-list',
        fx('allow-expired.json'),
      ],
      { cwd: ROOT },
    );
    assert.equal(lastDay.status, 0);
  });

  test('an entry for another package does not cover the finding', () => {
    const dir = mkdtempSync(join(tmpdir(), 'tp-gate-'));
    const list = JSON.parse(readFileSync(fx('allow-high.json'), 'utf8'));
    list.entries[0].package = 'libssl-dev';
    writeFileSync(join(dir, 'allow.json'), JSON.stringify(list));
    assert.equal(gate('--image', fx('trivy-high.json'), '--allow-list', join(dir, 'allow.json')).code, 1);
  });

  test('a malformed allow-list or report stops the gate (exit 2), it never passes silently', () => {
    const dir = mkdtempSync(join(tmpdir(), 'tp-gate-'));
    const entry = JSON.parse(readFileSync(fx('allow-high.json'), 'utf8')).entries[0];
    const write = (name: string, doc: unknown) => (
      writeFileSync(join(dir, name), JSON.stringify(doc)), join(dir, name)
    );
    const cases: [string, string][] = [
      [write('no-reason.json', { entries: [{ ...entry, reason: '' }] }), 'needs "reason"'],
      [write('vague.json', { entries: [{ ...entry, reason: 'accepted' }] }), 'must say why'],
      [write('long.json', { entries: [{ ...entry, reviewed_on: '2026-01-01', expires: '2026-12-31' }] }), 'at most 90'],
      [write('nodate.json', { entries: [{ ...entry, expires: 'next year' }] }), 'must be a date'],
    ];
    for (const [file, message] of cases) {
      const r = gate('--image', fx('trivy-clean.json'), '--allow-list', file);
      assert.equal(r.code, 2, r.out);
      assert.ok(r.out.includes(message), `${message}: ${r.out}`);
    }
    const failedAudit = write('audit-error.json', {
      error: { code: 'ENOAUDIT', summary: 'Your configured registry does not support audit requests.' },
    });
    const r = gate('--npm-audit', failedAudit);
    assert.equal(r.code, 2);
    assert.match(r.out, /npm audit failed: Your configured registry does not support audit requests/);
    // What `npm audit --json` prints where the registry refuses the bulk advisory request (here).
    const refused = gate('--npm-audit', fx('npm-audit-405.json'));
    assert.equal(refused.code, 2);
    assert.match(refused.out, /npm audit failed: 405 Method Not Allowed/);
    assert.equal(gate('--image', write('other.json', { hello: 1 })).code, 2);
    assert.equal(gate().code, 2, 'no report at all is not a pass');
  });
});

describe('pipeline definitions', () => {
  test('GitHub Actions: test, build, SBOM, scan through the gate, sign, push, deploy with a rollout check, notify on failure', () => {
    const wf = parseYaml(readFileSync(join(ROOT, '.github', 'workflows', 'delivery.yml'), 'utf8'));
    const { test: t, image, deploy, 'notify-failure': notify } = wf.jobs;
    assert.ok(t && image && deploy && notify);
    assert.deepEqual(image.needs, 'test');
    assert.equal(deploy.needs, 'image');
    const runs = (job: any) => job.steps.map((s: any) => `${s.uses ?? ''} ${s.run ?? ''}`).join('\n');
    assert.match(runs(t), /bash \.ci\/run/);
    const img = runs(image);
    const order = [
      'docker buildx build',
      'cyclonedx',
      'trivy image --format json',
      'vuln-gate.ts',
      'docker push',
      'cosign sign',
      'describe-image-scan-findings',
    ];
    let at = -1;
    for (const step of order) {
      const i = img.indexOf(step);
      assert.ok(i > at, `"${step}" comes after the step before it`);
      at = i;
    }
    assert.match(img, /--fail-on high/);
    assert.match(runs(deploy), /cosign verify[\s\S]*deploy\/pipeline\/deploy\.sh prod/);
    assert.deepEqual(notify.needs, ['test', 'image', 'deploy']);
    assert.equal(notify.if, 'failure()');
    assert.match(runs(notify), /sns publish/);
    assert.deepEqual(wf.permissions, { contents: 'read' }, 'least privilege by default');
    for (const job of Object.values<any>(wf.jobs))
      for (const s of job.steps) if (s.uses) assert.match(s.uses, /@v\d+$/, `${s.uses} is pinned to a release`);
  });

  test("CodeBuild: the same gate before the push, ECR's scan after it, a notification on failure", () => {
    const bs = parseYaml(readFileSync(join(ROOT, 'buildspec.yml'), 'utf8'));
    assert.equal(bs.version, 0.2);
    const build = bs.phases.build.commands.join('\n');
    const post = bs.phases.post_build.commands.join('\n');
    assert.match(
      build,
      /trivy image --format json[\s\S]*vuln-gate\.ts --image trivy\.json --npm-audit npm-audit\.json/,
    );
    assert.match(post, /^test "\$CODEBUILD_BUILD_SUCCEEDING" = 1/, 'nothing is pushed after a failed build');
    assert.match(post, /docker push[\s\S]*cosign sign[\s\S]*vuln-gate\.ts --image ecr-scan\.json/);
    assert.match(bs.phases.post_build.finally.join('\n'), /sns publish/);
  });

  test('deploy.sh pins the image by digest on the overlay, and refuses a tag', {
    skip: spawnSync('kubectl', ['version', '--client']).status === 0 ? false : 'kubectl is not installed',
  }, () => {
    const image = '111122223333.dkr.ecr.ap-south-1.amazonaws.com/tillpoint@sha256:' + 'a'.repeat(64);
    const r = spawnSync('bash', [join(ROOT, 'deploy', 'pipeline', 'deploy.sh'), 'prod', image, '--render-only'], {
      encoding: 'utf8',
    });
    assert.equal(r.status, 0, r.stderr + r.stdout);
    const images = parseAllDocuments(r.stdout)
      .map((d) => d.toJSON())
      .filter((o) => o?.spec?.template?.spec)
      .flatMap((o) => o.spec.template.spec.containers.map((c: any) => c.image));
    assert.equal(images.length, 4, 'three roles and the migration Job');
    for (const i of images) assert.equal(i, image);
    const tag = spawnSync(
      'bash',
      [
        join(ROOT, 'deploy', 'pipeline', 'deploy.sh'),
        'prod',
        '111122223333.dkr.ecr.ap-south-1.amazonaws.com/tillpoint:latest',
        '--render-only',
      ],
      { encoding: 'utf8' },
    );
    assert.equal(tag.status, 2);
    const other = spawnSync(
      'bash',
      [
        join(ROOT, 'deploy', 'pipeline', 'deploy.sh'),
        'prod',
        'evil.example/tillpoint@sha256:' + 'b'.repeat(64),
        '--render-only',
      ],
      { encoding: 'utf8' },
    );
    assert.equal(other.status, 2, 'an image from another registry changes nothing and is refused');
  });
});
