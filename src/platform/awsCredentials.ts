import { readFile } from 'node:fs/promises';
import { Type } from '@sinclair/typebox';
import { defineSettings } from './settings.ts';

export interface AwsCredentials {
  accessKeyId: string;
  secretAccessKey: string;
  /** Temporary credentials (STS, IRSA) carry a session token, sent as X-Amz-Security-Token. */
  sessionToken?: string;
}

// Where the app's AWS credentials come from, in the order the AWS SDKs use:
//   1. static keys in the environment (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY [/ AWS_SESSION_TOKEN]),
//      read on each call so a changed environment is seen;
//   2. web identity (IRSA on EKS): AWS_WEB_IDENTITY_TOKEN_FILE + AWS_ROLE_ARN [+ AWS_ROLE_SESSION_NAME],
//      exchanged for temporary credentials with STS AssumeRoleWithWebIdentity, cached, and
//      refreshed a few minutes before they expire (re-reading the token file, which the kubelet
//      rotates). Concurrent callers share one refresh.

export type AwsCredentialsProvider = () => Promise<AwsCredentials>;
type Env = Record<string, string | undefined>;

export class AwsCredentialsError extends Error {
  constructor(
    message: string,
    /** STS's error code (e.g. InvalidIdentityToken, AccessDenied), or a local reason. */
    readonly code: string,
  ) {
    super(message);
    this.name = 'AwsCredentialsError';
  }
}

export interface AwsCredentialsOptions {
  /** STS endpoint; default AWS_STS_ENDPOINT, else https://sts.<AWS_REGION>.amazonaws.com (the regional endpoint). */
  stsEndpoint?: string;
  /** Refresh this long before Expiration. Default 5 minutes. */
  refreshBeforeMs?: number;
  fetch?: typeof fetch;
  now?: () => Date;
  timeoutMs?: number;
}

/**
 * AWS credentials and region, for KMS, Secrets Manager and the S3 audit export. Read where they
 * are used (credentials on each call, so a changed environment is seen); nothing to load here.
 */
export const awsSettings = defineSettings({
  title: 'AWS',
  source: 'src/platform/awsCredentials.ts',
  schema: Type.Object({
    AWS_REGION: Type.String({ description: 'Region of KMS, Secrets Manager and STS.' }),
    AWS_DEFAULT_REGION: Type.String({ description: 'Used when `AWS_REGION` is unset.' }),
    AWS_ACCESS_KEY_ID: Type.String({ description: 'Static AWS credentials (with `AWS_SECRET_ACCESS_KEY`).' }),
    AWS_SECRET_ACCESS_KEY: Type.String({ description: 'Static AWS credentials (with `AWS_ACCESS_KEY_ID`).' }),
    AWS_SESSION_TOKEN: Type.String({ description: 'Session token of temporary static credentials.' }),
    AWS_WEB_IDENTITY_TOKEN_FILE: Type.String({
      description:
        'Without static keys: web identity (IRSA on EKS), this token file and `AWS_ROLE_ARN` are exchanged with STS for temporary credentials, refreshed before they expire.',
    }),
    AWS_ROLE_ARN: Type.String({ description: 'The role assumed with the web identity token.' }),
    AWS_ROLE_SESSION_NAME: Type.String({ defaultText: 'generated', description: 'Session name of the assumed role.' }),
    AWS_STS_ENDPOINT: Type.String({
      defaultText: '`https://sts.<AWS_REGION>.amazonaws.com`',
      description: 'STS endpoint for the web identity exchange.',
    }),
    AWS_ENDPOINT_URL: Type.String({
      defaultText: "each service's public endpoint",
      description:
        "The AWS SDKs' own override, for every service the compliance report reads with `--aws` (a VPC endpoint, a test server).",
    }),
    AWS_ENDPOINT_URL_CONFIG_SERVICE: Type.String({ description: 'AWS Config endpoint for `compliance report --aws`.' }),
    AWS_ENDPOINT_URL_CLOUDTRAIL: Type.String({ description: 'CloudTrail endpoint for `compliance report --aws`.' }),
    AWS_ENDPOINT_URL_S3: Type.String({
      description: "S3 endpoint (path style) for the audit bucket's Object Lock check of `compliance report --aws`.",
    }),
    AWS_ENDPOINT_URL_INSPECTOR2: Type.String({
      description: 'Amazon Inspector endpoint for `compliance report --aws`.',
    }),
  }),
  load: () => ({}),
});

/** True if the environment names a way to obtain AWS credentials (static keys or web identity). */
export function hasAwsCredentials(env: Env = process.env): boolean {
  return Boolean(
    (env.AWS_ACCESS_KEY_ID && env.AWS_SECRET_ACCESS_KEY) || (env.AWS_WEB_IDENTITY_TOKEN_FILE && env.AWS_ROLE_ARN),
  );
}

/** The provider chain: static environment keys, else web identity. */
export function awsCredentials(env: Env = process.env, o: AwsCredentialsOptions = {}): AwsCredentialsProvider {
  let webIdentity: AwsCredentialsProvider | undefined;
  return async () => {
    const accessKeyId = env.AWS_ACCESS_KEY_ID;
    const secretAccessKey = env.AWS_SECRET_ACCESS_KEY;
    if (accessKeyId && secretAccessKey)
      return { accessKeyId, secretAccessKey, sessionToken: env.AWS_SESSION_TOKEN || undefined };
    if (env.AWS_WEB_IDENTITY_TOKEN_FILE && env.AWS_ROLE_ARN) {
      webIdentity ??= webIdentityCredentials({
        ...o,
        tokenFile: env.AWS_WEB_IDENTITY_TOKEN_FILE,
        roleArn: env.AWS_ROLE_ARN,
        sessionName: env.AWS_ROLE_SESSION_NAME || undefined,
        stsEndpoint: o.stsEndpoint ?? (env.AWS_STS_ENDPOINT || undefined),
        region: env.AWS_REGION || env.AWS_DEFAULT_REGION || undefined,
      });
      return webIdentity();
    }
    throw new AwsCredentialsError(
      'AWS credentials missing: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_WEB_IDENTITY_TOKEN_FILE and AWS_ROLE_ARN (IRSA)',
      'CredentialsMissing',
    );
  };
}

export interface WebIdentityOptions extends AwsCredentialsOptions {
  tokenFile: string;
  roleArn: string;
  /** Default: tillpoint-<timestamp>. Appears in CloudTrail as the assumed role's session. */
  sessionName?: string;
  region?: string;
}

/**
 * STS AssumeRoleWithWebIdentity (Query API, version 2011-06-15). The request is not signed: the
 * web identity token is the proof. The documented response is XML:
 *   <AssumeRoleWithWebIdentityResponse><AssumeRoleWithWebIdentityResult><Credentials>
 *     <AccessKeyId/><SecretAccessKey/><SessionToken/><Expiration>ISO 8601</Expiration>
 *   </Credentials>…</AssumeRoleWithWebIdentityResult></AssumeRoleWithWebIdentityResponse>
 * and errors are <ErrorResponse><Error><Type/><Code/><Message/></Error></ErrorResponse>.
 */
export function webIdentityCredentials(o: WebIdentityOptions): AwsCredentialsProvider {
  const endpoint =
    (o.stsEndpoint ?? (o.region ? `https://sts.${o.region}.amazonaws.com` : 'https://sts.amazonaws.com')).replace(
      /\/$/,
      '',
    ) + '/';
  const now = o.now ?? (() => new Date());
  const refreshBeforeMs = o.refreshBeforeMs ?? 5 * 60_000;
  const doFetch = o.fetch ?? fetch;
  let cached: { credentials: AwsCredentials; expiresAt: number } | undefined;
  let inflight: Promise<AwsCredentials> | undefined;

  async function assume(): Promise<AwsCredentials> {
    let token: string;
    try {
      // Re-read every time: the kubelet rotates the projected token (by default hourly).
      token = (await readFile(o.tokenFile, 'utf8')).trim();
    } catch (e) {
      throw new AwsCredentialsError(
        `web identity token file ${o.tokenFile} cannot be read (${(e as NodeJS.ErrnoException).code ?? 'error'})`,
        'TokenFileUnreadable',
      );
    }
    if (!token) throw new AwsCredentialsError(`web identity token file ${o.tokenFile} is empty`, 'TokenFileUnreadable');
    const body = new URLSearchParams({
      Action: 'AssumeRoleWithWebIdentity',
      Version: '2011-06-15',
      RoleArn: o.roleArn,
      RoleSessionName: o.sessionName ?? `tillpoint-${now().getTime()}`,
      WebIdentityToken: token,
    }).toString();
    let res: Response;
    try {
      res = await doFetch(endpoint, {
        method: 'POST',
        headers: { 'Content-Type': 'application/x-www-form-urlencoded; charset=utf-8', Accept: 'text/xml' },
        body,
        signal: AbortSignal.timeout(o.timeoutMs ?? 10_000),
      });
    } catch (e) {
      // The request carried the token; report only what kind of failure it was.
      throw new AwsCredentialsError(
        `STS AssumeRoleWithWebIdentity for ${o.roleArn} unreachable at ${endpoint} (${(e as Error).name === 'TimeoutError' ? 'timeout' : 'network error'})`,
        'StsUnreachable',
      );
    }
    const xml = (await res.text()).slice(0, 64_000);
    if (!res.ok) {
      const code = tag(xml, 'Code') ?? 'UnknownError';
      // STS messages describe the request (audience, issuer, role), not the token itself.
      const message = (tag(xml, 'Message') ?? '').slice(0, 300);
      throw new AwsCredentialsError(
        `STS AssumeRoleWithWebIdentity for ${o.roleArn} refused: ${res.status} ${code}${message ? `: ${message}` : ''}`,
        code,
      );
    }
    const creds = tag(xml, 'Credentials') ?? '';
    const accessKeyId = tag(creds, 'AccessKeyId');
    const secretAccessKey = tag(creds, 'SecretAccessKey');
    const sessionToken = tag(creds, 'SessionToken');
    const expiration = Date.parse(tag(creds, 'Expiration') ?? '');
    if (!accessKeyId || !secretAccessKey || !sessionToken || Number.isNaN(expiration)) {
      throw new AwsCredentialsError(
        `STS AssumeRoleWithWebIdentity for ${o.roleArn}: unreadable response`,
        'UnreadableResponse',
      );
    }
    const credentials = { accessKeyId, secretAccessKey, sessionToken };
    cached = { credentials, expiresAt: expiration };
    return credentials;
  }

  return async () => {
    const t = now().getTime();
    if (cached && t < cached.expiresAt - refreshBeforeMs) return cached.credentials;
    inflight ??= assume().finally(() => {
      inflight = undefined;
    });
    try {
      return await inflight;
    } catch (e) {
      // A failed early refresh is not fatal while the cached credentials are still valid: the
      // next call tries again. Once they have expired, the caller sees the error.
      if (cached && t < cached.expiresAt - 30_000) return cached.credentials;
      throw e;
    }
  };
}

const XML_ENTITIES: Record<string, string> = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'" };
function tag(xml: string, name: string): string | undefined {
  const m = new RegExp(`<${name}>([\\s\\S]*?)</${name}>`).exec(xml);
  return m ? m[1].trim().replace(/&(amp|lt|gt|quot|apos);/g, (_, e: string) => XML_ENTITIES[e]) : undefined;
}
