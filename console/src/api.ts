// One way to call the API from the console: same origin, the session cookie (HttpOnly, set by
// POST /v1/auth/mfa) goes along by itself, and every state change carries the session's CSRF
// token. Errors keep the API's stable code so screens can say what went wrong.

let csrfToken: string | undefined;
export const setCsrfToken = (t: string | undefined) => {
  csrfToken = t;
};

export class ApiError extends Error {
  constructor(
    public status: number,
    public code: string,
    message: string,
    public requestId?: string,
  ) {
    super(message);
  }
}

let onUnauthenticated: (() => void) | undefined;
export const setOnUnauthenticated = (f: () => void) => {
  onUnauthenticated = f;
};

export async function api<T>(
  method: string,
  path: string,
  body?: unknown,
  opts: { idempotencyKey?: string } = {},
): Promise<T> {
  const headers: Record<string, string> = { accept: 'application/json' };
  if (body !== undefined) headers['content-type'] = 'application/json';
  if (method !== 'GET' && csrfToken) headers['x-csrf-token'] = csrfToken;
  if (opts.idempotencyKey) headers['idempotency-key'] = opts.idempotencyKey;
  const res = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    credentials: 'same-origin',
  });
  if (res.status === 204) return undefined as T;
  const text = await res.text();
  let json: unknown;
  try {
    json = text ? JSON.parse(text) : undefined;
  } catch {
    json = undefined;
  }
  if (!res.ok) {
    const e = (json as { error?: { code?: string; message?: string; request_id?: string } } | undefined)?.error;
    const err = new ApiError(
      res.status,
      e?.code ?? 'http_' + res.status,
      e?.message ?? `HTTP ${res.status}`,
      e?.request_id,
    );
    if (res.status === 401 && !path.startsWith('/v1/auth/')) onUnauthenticated?.();
    throw err;
  }
  return json as T;
}

export const get = <T>(path: string) => api<T>('GET', path);
export const post = <T>(path: string, body?: unknown, opts?: { idempotencyKey?: string }) =>
  api<T>('POST', path, body ?? {}, opts);

export function qs(params: Record<string, string | number | boolean | undefined | null>): string {
  const u = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== '') u.set(k, String(v));
  const s = u.toString();
  return s ? '?' + s : '';
}

export interface Page<T> {
  data: T[];
  next_cursor: string | null;
}

export interface Operator {
  id: string;
  email: string;
  name: string;
  merchant_id: string | null;
  roles: string[];
  status: string;
  locked_until: string | null;
  mfa_enrolled: boolean;
  must_change_password: boolean;
  last_login_at: string | null;
  created_at: string;
}
export interface Session {
  operator: Operator;
  permissions: string[];
  csrf_token: string;
  session: { id: string; expires_at: string; idle_timeout_seconds: number };
}

export interface Payment {
  id: string;
  terminal_id: string;
  store_id: string;
  merchant_id: string;
  method: string;
  amount: number;
  currency: string;
  status: string;
  payer_vpa: string | null;
  note: string | null;
  upi_uri: string | null;
  txn_ref: string;
  bank: { code: string; ref: string | null; response_code: string | null };
  refunded_amount: number;
  refundable_amount: number;
  needs_reconciliation: boolean;
  expires_at: string;
  created_at: string;
  updated_at: string;
  completed_at: string | null;
}
export interface Refund {
  id: string;
  payment_id: string;
  amount: number;
  status: string;
  reason: string | null;
  created_at: string;
  completed_at: string | null;
}
export interface Terminal {
  id: string;
  merchant_id: string;
  store_id: string;
  name?: string;
  serial?: string;
  status: string;
  created_at: string;
  /** Connected to the broker now; when the platform last heard from it (terminals presence). */
  online?: boolean;
  last_seen_at?: string | null;
  [k: string]: unknown;
}
export interface AuditRecord {
  id: string;
  at: string;
  action: string;
  outcome: string;
  actor: Record<string, unknown>;
  resource: Record<string, unknown>;
  details: Record<string, unknown>;
  leaf_index: number | null;
}

export const FINAL = new Set(['succeeded', 'failed', 'expired', 'partially_refunded', 'refunded']);
