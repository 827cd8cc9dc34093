import { KmsError, contextBytes, type KekInfo, type KeyContext, type KeyManager } from './types.ts';

// HashiCorp Vault's transit secrets engine as the key-encrypting key: datakey, decrypt, rewrap,
// rotate and min_decryption_version over Vault's HTTP API. The transit key must be created with
// derived=true: each call then sends the data key's context as the derivation context, so a
// wrapped key only unwraps under the purpose and version it was made for.
//
// Wrapped form: Vault's own "vault:v<key version>:<base64>".

export interface VaultTransitOptions {
  /** e.g. https://vault.internal:8200 */
  address: string;
  /** Read on every call, so a renewed token (agent sink file, secrets provider) is picked up. */
  token: () => string | Promise<string>;
  keyName: string;
  mount?: string;
  /** Vault Enterprise / HCP namespace. */
  namespace?: string;
  timeoutMs?: number;
  fetch?: typeof fetch;
}

interface VaultResponse<T> {
  data?: T;
  errors?: string[];
  warnings?: string[];
}

const WRAP_RE = /^vault:v(\d+):[A-Za-z0-9+/=]+$/;

export function createVaultTransitKeyManager(o: VaultTransitOptions): KeyManager {
  const base = `${o.address.replace(/\/$/, '')}/v1/${(o.mount ?? 'transit').replace(/^\/|\/$/g, '')}`;
  const name = encodeURIComponent(o.keyName);
  const doFetch = o.fetch ?? fetch;
  const ctx = (c: KeyContext) => contextBytes(c).toString('base64');

  async function vault<T>(operation: string, method: 'GET' | 'POST', path: string, body?: unknown): Promise<T> {
    const headers: Record<string, string> = { 'X-Vault-Token': await o.token(), 'X-Vault-Request': 'true' };
    if (o.namespace) headers['X-Vault-Namespace'] = o.namespace;
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    let res: Response;
    try {
      res = await doFetch(base + path, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: AbortSignal.timeout(o.timeoutMs ?? 10_000),
      });
    } catch (e) {
      throw new KmsError(
        'vault-transit',
        operation,
        (e as Error).name === 'TimeoutError' ? 'timeout' : 'unreachable',
        true,
      );
    }
    if (res.status === 204) return undefined as T;
    const text = await res.text();
    let parsed: VaultResponse<T> = {};
    try {
      parsed = text ? JSON.parse(text) : {};
    } catch {
      throw new KmsError('vault-transit', operation, `unreadable response (HTTP ${res.status})`, res.status >= 500);
    }
    if (!res.ok) {
      // Vault's messages name the failure ("permission denied", "cipher: message authentication
      // failed"); they carry no key material. Keep the first, shortened.
      const msg = (parsed.errors ?? [])[0]?.slice(0, 160) ?? '';
      throw new KmsError(
        'vault-transit',
        operation,
        `HTTP ${res.status}${msg ? `: ${msg}` : ''}`,
        res.status >= 500 || res.status === 429,
      );
    }
    return parsed.data as T;
  }

  const ref = (version: number) => `vault-transit:${o.keyName}:v${version}`;
  const checkWrapped = (w: string, op: string) => {
    if (!WRAP_RE.test(w)) throw new KmsError('vault-transit', op, 'not a Vault transit ciphertext', false);
  };

  async function readKey() {
    return vault<{
      latest_version: number;
      min_decryption_version: number;
      derived: boolean;
      type: string;
      keys: Record<string, number | string>;
    }>('read key', 'GET', `/keys/${name}`);
  }
  const asDate = (v: number | string | undefined) =>
    v === undefined ? null : typeof v === 'number' ? new Date(v * 1000) : new Date(v);

  return {
    provider: 'vault-transit',
    async generateDataKey(context) {
      const d = await vault<{ plaintext: string; ciphertext: string; key_version: number }>(
        'datakey',
        'POST',
        `/datakey/plaintext/${name}`,
        {
          bits: 256,
          context: ctx(context),
        },
      );
      const plaintext = Buffer.from(d?.plaintext ?? '', 'base64');
      if (plaintext.length !== 32 || !d?.ciphertext)
        throw new KmsError('vault-transit', 'datakey', 'unexpected response', false);
      checkWrapped(d.ciphertext, 'datakey');
      return { plaintext, wrapped: d.ciphertext, kekRef: ref(d.key_version) };
    },
    async unwrap(wrapped, context) {
      checkWrapped(wrapped, 'decrypt');
      const d = await vault<{ plaintext: string }>('decrypt', 'POST', `/decrypt/${name}`, {
        ciphertext: wrapped,
        context: ctx(context),
      });
      const plaintext = Buffer.from(d?.plaintext ?? '', 'base64');
      if (plaintext.length !== 32) throw new KmsError('vault-transit', 'decrypt', 'unexpected response', false);
      return plaintext;
    },
    async rewrap(wrapped, context) {
      checkWrapped(wrapped, 'rewrap');
      // Vault decrypts and encrypts under the latest key version itself; no plaintext comes back.
      const d = await vault<{ ciphertext: string; key_version: number }>('rewrap', 'POST', `/rewrap/${name}`, {
        ciphertext: wrapped,
        context: ctx(context),
      });
      checkWrapped(d?.ciphertext ?? '', 'rewrap');
      return { wrapped: d.ciphertext, kekRef: ref(d.key_version) };
    },
    async rotate() {
      await vault('rotate', 'POST', `/keys/${name}/rotate`, {});
      return this.describe();
    },
    async retireOldVersions() {
      const k = await readKey();
      if (k.min_decryption_version >= k.latest_version) return 0;
      await vault('config', 'POST', `/keys/${name}/config`, { min_decryption_version: k.latest_version });
      return k.latest_version - k.min_decryption_version;
    },
    async describe(): Promise<KekInfo> {
      const k = await readKey();
      if (!k.derived) {
        throw new KmsError(
          'vault-transit',
          'read key',
          `transit key "${o.keyName}" must be created with derived=true, so each data key is bound to its purpose`,
          false,
        );
      }
      const versions = Object.entries(k.keys ?? {}).map(([v, t]) => ({
        version: Number(v),
        createdAt: asDate(t),
        usable: Number(v) >= k.min_decryption_version,
      }));
      return {
        provider: 'vault-transit',
        kekRef: ref(k.latest_version),
        createdAt: asDate(k.keys?.[String(k.latest_version)]),
        versions,
      };
    },
  };
}
