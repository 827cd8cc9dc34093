import { createCipheriv, createDecipheriv, createHmac, createSecretKey, randomBytes } from 'node:crypto';

// AES-256-GCM for small secrets the service must read back (TOTP secrets). The associated data
// binds a ciphertext to the row it belongs to: copied to another operator, it fails to open.
// Layout: version (1) | nonce (12) | tag (16) | ciphertext.

const VERSION = 1;

export interface SecretBox {
  seal(plain: Uint8Array, boundTo: string): Buffer;
  open(sealed: Uint8Array, boundTo: string): Buffer;
  /** A keyed hash for values that must be recomputed, never read back (CSRF tokens). */
  mac(purpose: string, value: string): Buffer;
}

export function createSecretBox(key: Buffer): SecretBox {
  if (key.length !== 32) throw new Error('secret box key must be 32 bytes');
  // KeyObjects: Node 24 takes a raw Buffer key through two thrown TypeErrors per call.
  const derive = (label: string) => createSecretKey(createHmac('sha256', key).update(label).digest());
  const encKey = derive('tillpoint/identity/seal/v1');
  const macKey = derive('tillpoint/identity/mac/v1');
  return {
    seal(plain, boundTo) {
      const nonce = randomBytes(12);
      const c = createCipheriv('aes-256-gcm', encKey, nonce);
      c.setAAD(Buffer.from(boundTo, 'utf8'));
      const body = Buffer.concat([c.update(plain), c.final()]);
      return Buffer.concat([Buffer.from([VERSION]), nonce, c.getAuthTag(), body]);
    },
    open(sealed, boundTo) {
      const b = Buffer.from(sealed);
      if (b.length < 29 || b[0] !== VERSION) throw new Error('sealed secret: unknown format');
      const d = createDecipheriv('aes-256-gcm', encKey, b.subarray(1, 13));
      d.setAAD(Buffer.from(boundTo, 'utf8'));
      d.setAuthTag(b.subarray(13, 29));
      return Buffer.concat([d.update(b.subarray(29)), d.final()]);
    },
    mac: (purpose, value) => createHmac('sha256', macKey).update(`${purpose}\n${value}`).digest(),
  };
}
