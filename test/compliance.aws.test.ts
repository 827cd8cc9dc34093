// The compliance report's AWS evidence (src/modules/compliance/awsEvidence.ts). AWS cannot be
// reached from here, so an HTTP server answers as AWS Config, CloudTrail, S3 and Inspector do,
// in each API's documented wire format (JSON 1.1 with X-Amz-Target; S3's REST XML; Inspector's
// REST JSON), and checks that every request is signed with SigV4 by the configured credentials.
// Each control is flipped in turn and its row turns to a failure; an unreadable service is an
// error, never a pass.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { signV4 } from '../src/platform/aws.ts';
import { awsChecks, gatherAwsEvidence, type CheckResult } from '../src/modules/compliance/index.ts';
import { complianceReport } from '../src/cli/commands/compliance.ts';
import { startTestApp, type TestApp } from './helpers/harness.ts';

const CREDS = { accessKeyId: 'AKIDTILLPOINTTEST', secretAccessKey: 'wJalrXUtnFEMI/K7MDENG+bPxRfiCYTESTKEY' };
const REGION = 'ap-south-1';

interface AwsState {
  rules: { ConfigRuleName: string; Compliance: { ComplianceType: string } }[];
  trail: { IsMultiRegionTrail: boolean; LogFileValidationEnabled: boolean; IsLogging: boolean } | null;
  lock: string | null; // the S3 XML body, or null for "no configuration"
  critical: number;
  high: number;
  inspectorDenied: boolean;
}

const compliant = (): AwsState => ({
  rules: [
    { ConfigRuleName: 's3-bucket-ssl-requests-only', Compliance: { ComplianceType: 'COMPLIANT' } },
    { ConfigRuleName: 'rds-storage-encrypted', Compliance: { ComplianceType: 'COMPLIANT' } },
    { ConfigRuleName: 'iam-user-mfa-enabled', Compliance: { ComplianceType: 'NOT_APPLICABLE' } },
  ],
  trail: { IsMultiRegionTrail: true, LogFileValidationEnabled: true, IsLogging: true },
  lock: lockXml('COMPLIANCE', '<Years>1</Years>'),
  critical: 0,
  high: 0,
  inspectorDenied: false,
});

function lockXml(mode: string, period: string) {
  return `<?xml version="1.0" encoding="UTF-8"?>
<ObjectLockConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><ObjectLockEnabled>Enabled</ObjectLockEnabled><Rule><DefaultRetention><Mode>${mode}</Mode>${period}</DefaultRetention></Rule></ObjectLockConfiguration>`;
}

function body(req: IncomingMessage): Promise<string> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
  });
}

/** The request's SigV4 signature, recomputed from what arrived: the client signed what it sent. */
function signatureHolds(req: IncomingMessage, text: string, service: string, url: string): boolean {
  const auth = String(req.headers.authorization ?? '');
  const m = auth.match(
    /^AWS4-HMAC-SHA256 Credential=([^/]+)\/(\d{8})\/([^/]+)\/([^/]+)\/aws4_request, SignedHeaders=([^,]+), Signature=([0-9a-f]{64})$/,
  );
  if (!m || m[1] !== CREDS.accessKeyId || m[3] !== REGION || m[4] !== service) return false;
  const date = String(req.headers['x-amz-date']);
  const now = new Date(
    `${date.slice(0, 4)}-${date.slice(4, 6)}-${date.slice(6, 8)}T${date.slice(9, 11)}:${date.slice(11, 13)}:${date.slice(13, 15)}Z`,
  );
  const headers: Record<string, string> = {};
  for (const name of m[5].split(';')) if (name !== 'x-amz-date') headers[name] = String(req.headers[name]);
  const again = signV4({
    method: req.method!,
    url,
    headers,
    body: text,
    region: REGION,
    service,
    credentials: CREDS,
    now,
  });
  return again.signature === m[6];
}

describe('compliance report: AWS evidence', () => {
  let server: Server;
  let endpoint: string;
  let state: AwsState;
  const unsigned: string[] = [];
  let t: TestApp;

  before(async () => {
    server = createServer(async (req, res) => {
      const text = await body(req);
      const json = (status: number, v: unknown, type = 'application/x-amz-json-1.1') =>
        res.writeHead(status, { 'content-type': type }).end(JSON.stringify(v));
      const target = String(req.headers['x-amz-target'] ?? '');
      const service = target.startsWith('StarlingDoveService')
        ? 'config'
        : target.startsWith('com.amazonaws.cloudtrail')
          ? 'cloudtrail'
          : req.url!.startsWith('/findings')
            ? 'inspector2'
            : 's3';
      if (!signatureHolds(req, text, service, endpoint + req.url)) unsigned.push(`${service} ${req.url}`);
      if (target === 'StarlingDoveService.DescribeComplianceByConfigRule') {
        // Two pages, as AWS pages long lists.
        const first = !JSON.parse(text).NextToken;
        return json(
          200,
          first
            ? { ComplianceByConfigRules: state.rules.slice(0, 1), NextToken: 'p2' }
            : { ComplianceByConfigRules: state.rules.slice(1) },
        );
      }
      if (target.endsWith('.DescribeTrails'))
        return json(200, {
          trailList: state.trail
            ? [
                {
                  Name: 'org-trail',
                  TrailARN: 'arn:aws:cloudtrail:ap-south-1:111122223333:trail/org-trail',
                  ...state.trail,
                },
              ]
            : [],
        });
      if (target.endsWith('.GetTrailStatus')) {
        assert.equal(JSON.parse(text).Name, 'arn:aws:cloudtrail:ap-south-1:111122223333:trail/org-trail');
        return json(200, { IsLogging: state.trail?.IsLogging ?? false });
      }
      if (req.method === 'GET' && req.url === '/tillpoint-audit?object-lock=') {
        if (state.lock === null)
          return res
            .writeHead(404, { 'content-type': 'application/xml' })
            .end(
              '<Error><Code>ObjectLockConfigurationNotFoundError</Code><Message>Object Lock configuration does not exist for this bucket</Message></Error>',
            );
        return res.writeHead(200, { 'content-type': 'application/xml' }).end(state.lock);
      }
      if (req.method === 'POST' && req.url === '/findings/list') {
        if (state.inspectorDenied)
          return res
            .writeHead(403, {
              'x-amzn-errortype': 'AccessDeniedException:http://internal.amazon.com/coral/',
              'content-type': 'application/json',
            })
            .end('{"message":"User is not authorized to perform: inspector2:ListFindings"}');
        const q = JSON.parse(text);
        assert.deepEqual(q.filterCriteria.findingStatus, [{ comparison: 'EQUALS', value: 'ACTIVE' }]);
        const sev = q.filterCriteria.severity[0].value as 'CRITICAL' | 'HIGH';
        const n = sev === 'CRITICAL' ? state.critical : state.high;
        return json(
          200,
          { findings: Array.from({ length: n }, (_, i) => ({ findingArn: `arn:f/${sev}/${i}`, severity: sev })) },
          'application/json',
        );
      }
      json(400, { __type: 'UnknownOperationException', message: `${req.method} ${req.url} ${target}` });
    });
    // Port 0: the server listens at once, on a port the kernel picks (nothing to race for).
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    endpoint = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
  });
  after(async () => {
    server.close();
    await t?.close();
  });

  const rows = async (bucket: string | null = 'tillpoint-audit') =>
    awsChecks(
      await gatherAwsEvidence({
        region: REGION,
        credentials: async () => CREDS,
        auditBucket: bucket ?? undefined,
        env: { AWS_ENDPOINT_URL: endpoint },
      }),
    );
  const byId = (rs: CheckResult[], id: string) => {
    const r = rs.find((x) => x.id === id);
    assert.ok(r, `no row ${id}: ${rs.map((x) => x.id)}`);
    return r;
  };

  test('a compliant account: every AWS row passes, every request was signed', async () => {
    state = compliant();
    const rs = await rows();
    assert.deepEqual(
      rs.map((r) => [r.id, r.status]),
      [
        ['12.aws-config', 'pass'],
        ['10.aws-cloudtrail', 'pass'],
        ['10.aws-object-lock', 'pass'],
        ['6.aws-inspector', 'pass'],
      ],
      JSON.stringify(rs.map((r) => r.summary)),
    );
    assert.match(byId(rs, '10.aws-object-lock').summary, /COMPLIANCE for 365 days/);
    assert.match(byId(rs, '12.aws-config').summary, /3 rules evaluated/);
    assert.deepEqual(unsigned, []);
    for (const r of rs) assert.match(r.evidence_sha256, /^[0-9a-f]{64}$/);
  });

  test('each control flipped fails its own row', async () => {
    state = {
      ...compliant(),
      rules: [
        ...compliant().rules,
        { ConfigRuleName: 'restricted-ssh', Compliance: { ComplianceType: 'NON_COMPLIANT' } },
      ],
    };
    const config = byId(await rows(), '12.aws-config');
    assert.equal(config.status, 'fail');
    assert.match(config.summary, /restricted-ssh/);

    state = { ...compliant(), trail: { IsMultiRegionTrail: true, LogFileValidationEnabled: true, IsLogging: false } };
    assert.equal(byId(await rows(), '10.aws-cloudtrail').status, 'fail');
    state = { ...compliant(), trail: { IsMultiRegionTrail: true, LogFileValidationEnabled: false, IsLogging: true } };
    assert.equal(byId(await rows(), '10.aws-cloudtrail').status, 'fail');
    state = { ...compliant(), trail: null };
    assert.match(byId(await rows(), '10.aws-cloudtrail').summary, /no CloudTrail trail/);

    state = { ...compliant(), lock: lockXml('GOVERNANCE', '<Days>400</Days>') };
    assert.equal(byId(await rows(), '10.aws-object-lock').status, 'fail');
    state = { ...compliant(), lock: lockXml('COMPLIANCE', '<Days>90</Days>') };
    assert.equal(byId(await rows(), '10.aws-object-lock').status, 'fail');
    state = { ...compliant(), lock: null };
    assert.match(byId(await rows(), '10.aws-object-lock').summary, /not enabled/);

    state = { ...compliant(), critical: 1, high: 2 };
    const ins = byId(await rows(), '6.aws-inspector');
    assert.equal(ins.status, 'fail');
    assert.match(ins.summary, /1 critical and 2 high/);
  });

  test('a service that cannot be read is an error, never a pass; no S3 export, no Object Lock row to pass', async () => {
    state = { ...compliant(), inspectorDenied: true };
    const rs = await rows(null);
    const ins = byId(rs, '6.aws-inspector');
    assert.equal(ins.status, 'error');
    assert.match(ins.summary, /403 AccessDeniedException/);
    assert.equal(byId(rs, '10.aws-object-lock').status, 'not_applicable');
  });

  test('`compliance report --aws`: read when asked with region and credentials, "not configured" with the reason otherwise', async () => {
    state = compliant();
    t = await startTestApp();
    const env = {
      AWS_REGION: REGION,
      AWS_ACCESS_KEY_ID: CREDS.accessKeyId,
      AWS_SECRET_ACCESS_KEY: CREDS.secretAccessKey,
      AWS_ENDPOINT_URL: endpoint,
    };
    const withAws = await complianceReport({ config: t.config, db: t.db, aws: true, env });
    const ids = withAws.report.results.map((r) => r.id);
    assert.ok(
      ['12.aws-config', '10.aws-cloudtrail', '6.aws-inspector'].every((id) => ids.includes(id)),
      ids.join(' '),
    );
    assert.equal(withAws.report.results.find((r) => r.id === '12.aws-config')?.status, 'pass');

    const noCreds = await complianceReport({ config: t.config, db: t.db, aws: true, env: { AWS_REGION: REGION } });
    const row = noCreds.report.results.find((r) => r.id === '12.aws-evidence');
    assert.equal(row?.status, 'not_configured');
    assert.match(row!.summary, /no AWS credentials/);
  });
});
