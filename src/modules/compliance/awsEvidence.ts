import { createHash } from 'node:crypto';
import { createAwsJsonClient, signV4, type AwsCredentials } from '../../platform/aws.ts';

// Evidence that AWS services hold, read for the compliance report when asked (`--aws`):
//   AWS Config   DescribeComplianceByConfigRule (JSON 1.1, target StarlingDoveService): every
//                rule's compliance; any NON_COMPLIANT rule fails the row
//   CloudTrail   DescribeTrails + GetTrailStatus (JSON 1.1, target
//                com.amazonaws.cloudtrail.v20131101.CloudTrail_20131101): a multi-region trail that
//                is logging with log file validation on (PCI DSS 10.2.1, 10.3.4)
//   S3           GetObjectLockConfiguration (REST, GET /?object-lock, XML) on the audit trail's WORM
//                bucket: Object Lock enabled, COMPLIANCE mode, default retention of 12 months or
//                more (10.3.3, 10.5.1)
//   Inspector    ListFindings (REST JSON, POST /findings/list): active CRITICAL and HIGH findings on
//                the images and hosts (6.3.3, 11.3.1)
// Each is read with SigV4 (platform/aws.ts) against the API's documented wire format; no AWS SDK.
// A service that cannot be read (no permission, network) gives its row the status "error" with
// AWS's error type, never a pass. Endpoints follow the AWS SDKs' own variables
// (AWS_ENDPOINT_URL_<SERVICE>, AWS_ENDPOINT_URL) for VPC endpoints and tests.

export interface AwsEvidenceOptions {
  region: string;
  credentials: () => Promise<AwsCredentials>;
  /** The audit trail's WORM bucket, when the export goes to S3. */
  auditBucket?: string;
  env?: Record<string, string | undefined>;
  fetch?: typeof fetch;
  now?: () => Date;
  timeoutMs?: number;
}

type Read<T> = T | { error: string };

export interface AwsEvidence {
  configured: true;
  region: string;
  config_rules: Read<{ rules: { name: string; compliance: string }[] }>;
  cloudtrail: Read<{
    trails: { name: string; multi_region: boolean; log_file_validation: boolean; is_logging: boolean }[];
  }>;
  object_lock: Read<{ bucket: string; enabled: boolean; mode: string | null; retention_days: number | null }> | null;
  inspector: Read<{ active_critical: number; active_high: number; capped: boolean }>;
}

/** How many pages a list is followed for (a report is evidence, not an inventory). */
const MAX_PAGES = 20;

/** A service's endpoint: its own AWS_ENDPOINT_URL_<SERVICE>, else AWS_ENDPOINT_URL, else AWS's. */
function endpointFor(env: Record<string, string | undefined>, own: string | undefined, fallback: string): string {
  return (own ?? env.AWS_ENDPOINT_URL ?? fallback).replace(/\/+$/, '');
}

async function read<T>(what: () => Promise<T>): Promise<Read<T>> {
  try {
    return await what();
  } catch (e) {
    return { error: (e as Error).message.slice(0, 300) };
  }
}

export async function gatherAwsEvidence(o: AwsEvidenceOptions): Promise<AwsEvidence> {
  const env = o.env ?? process.env;
  const common = { region: o.region, credentials: o.credentials, fetch: o.fetch, now: o.now, timeoutMs: o.timeoutMs };
  const configService = createAwsJsonClient({
    ...common,
    service: 'config',
    targetPrefix: 'StarlingDoveService',
    endpoint: endpointFor(env, env.AWS_ENDPOINT_URL_CONFIG_SERVICE, `https://config.${o.region}.amazonaws.com`),
  });
  const cloudtrail = createAwsJsonClient({
    ...common,
    service: 'cloudtrail',
    targetPrefix: 'com.amazonaws.cloudtrail.v20131101.CloudTrail_20131101',
    endpoint: endpointFor(env, env.AWS_ENDPOINT_URL_CLOUDTRAIL, `https://cloudtrail.${o.region}.amazonaws.com`),
  });

  const [config_rules, trails, object_lock, inspector] = await Promise.all([
    read(async () => {
      const rules: { name: string; compliance: string }[] = [];
      let token: string | undefined;
      for (let page = 0; page < MAX_PAGES; page++) {
        const r = await configService<{
          ComplianceByConfigRules?: { ConfigRuleName: string; Compliance?: { ComplianceType?: string } }[];
          NextToken?: string;
        }>('DescribeComplianceByConfigRule', token ? { NextToken: token } : {});
        for (const c of r.ComplianceByConfigRules ?? [])
          rules.push({ name: c.ConfigRuleName, compliance: c.Compliance?.ComplianceType ?? 'INSUFFICIENT_DATA' });
        token = r.NextToken;
        if (!token) break;
      }
      return { rules };
    }),
    read(async () => {
      const d = await cloudtrail<{
        trailList?: {
          Name: string;
          TrailARN?: string;
          IsMultiRegionTrail?: boolean;
          LogFileValidationEnabled?: boolean;
        }[];
      }>('DescribeTrails', { includeShadowTrails: true });
      const out = [];
      for (const t of d.trailList ?? []) {
        const s = await cloudtrail<{ IsLogging?: boolean }>('GetTrailStatus', { Name: t.TrailARN ?? t.Name });
        out.push({
          name: t.Name,
          multi_region: Boolean(t.IsMultiRegionTrail),
          log_file_validation: Boolean(t.LogFileValidationEnabled),
          is_logging: Boolean(s.IsLogging),
        });
      }
      return { trails: out };
    }),
    o.auditBucket ? read(() => objectLockConfiguration(o, env, o.auditBucket!)) : Promise.resolve(null),
    read(() => inspectorCounts(o, env)),
  ]);
  return { configured: true, region: o.region, config_rules, cloudtrail: trails, object_lock, inspector };
}

async function signedFetch(
  o: AwsEvidenceOptions,
  service: string,
  url: string,
  method: 'GET' | 'POST',
  body?: string,
  headers: Record<string, string> = {},
): Promise<{ status: number; text: string; errorType: string | null }> {
  const signed = signV4({
    method,
    url,
    headers,
    body: body ?? '',
    region: o.region,
    service,
    credentials: await o.credentials(),
    now: o.now?.(),
    doubleEncodePath: service !== 's3',
  });
  let res: Response;
  try {
    res = await (o.fetch ?? fetch)(url, {
      method,
      headers: signed.headers,
      body,
      signal: AbortSignal.timeout(o.timeoutMs ?? 10_000),
    });
  } catch (e) {
    throw new Error(`${service}: ${(e as Error).name === 'TimeoutError' ? 'Timeout' : 'NetworkError'}`);
  }
  const text = await res.text();
  return { status: res.status, text, errorType: res.headers.get('x-amzn-errortype') };
}

const xmlValue = (xml: string, tag: string): string | null =>
  xml.match(new RegExp(`<${tag}>([^<]*)</${tag}>`))?.[1] ?? null;

async function objectLockConfiguration(o: AwsEvidenceOptions, env: Record<string, string | undefined>, bucket: string) {
  const custom = env.AWS_ENDPOINT_URL_S3 ?? env.AWS_ENDPOINT_URL;
  // Path style against a custom endpoint (VPC endpoint, tests); virtual-hosted style on AWS.
  const url = custom
    ? `${custom.replace(/\/+$/, '')}/${bucket}?object-lock=`
    : `https://${bucket}.s3.${o.region}.amazonaws.com/?object-lock=`;
  const r = await signedFetch(o, 's3', url, 'GET', undefined, {
    'x-amz-content-sha256': createHash('sha256').update('').digest('hex'),
  });
  if (r.status === 404 && /ObjectLockConfigurationNotFoundError/.test(r.text))
    return { bucket, enabled: false, mode: null, retention_days: null };
  if (r.status !== 200)
    throw new Error(`s3 GetObjectLockConfiguration failed: ${r.status} ${xmlValue(r.text, 'Code') ?? ''}`);
  const days = xmlValue(r.text, 'Days');
  const years = xmlValue(r.text, 'Years');
  return {
    bucket,
    enabled: xmlValue(r.text, 'ObjectLockEnabled') === 'Enabled',
    mode: xmlValue(r.text, 'Mode'),
    retention_days: days ? Number(days) : years ? Number(years) * 365 : null,
  };
}

async function inspectorCounts(o: AwsEvidenceOptions, env: Record<string, string | undefined>) {
  const url = `${endpointFor(env, env.AWS_ENDPOINT_URL_INSPECTOR2, `https://inspector2.${o.region}.amazonaws.com`)}/findings/list`;
  const count = async (severity: 'CRITICAL' | 'HIGH') => {
    let n = 0;
    let token: string | undefined;
    for (let page = 0; page < MAX_PAGES; page++) {
      const body = JSON.stringify({
        filterCriteria: {
          severity: [{ comparison: 'EQUALS', value: severity }],
          findingStatus: [{ comparison: 'EQUALS', value: 'ACTIVE' }],
        },
        maxResults: 100,
        ...(token ? { nextToken: token } : {}),
      });
      const r = await signedFetch(o, 'inspector2', url, 'POST', body, { 'content-type': 'application/json' });
      if (r.status !== 200)
        throw new Error(`inspector2 ListFindings failed: ${r.status} ${r.errorType?.split(':')[0] ?? ''}`.trim());
      const parsed = JSON.parse(r.text) as { findings?: unknown[]; nextToken?: string };
      n += parsed.findings?.length ?? 0;
      token = parsed.nextToken;
      if (!token) return { n, capped: false };
    }
    return { n, capped: true };
  };
  const [critical, high] = await Promise.all([count('CRITICAL'), count('HIGH')]);
  return { active_critical: critical.n, active_high: high.n, capped: critical.capped || high.capped };
}
