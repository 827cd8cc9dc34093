// One masking function per kind of sensitive value, used by every response and log line.

/** "rahul.k@okaxis" -> "ra****@okaxis" */
export function maskVpa(vpa: string | null | undefined): string | null {
  if (!vpa) return null;
  const at = vpa.lastIndexOf('@');
  if (at < 0) return '****';
  const user = vpa.slice(0, at);
  return `${user.slice(0, Math.min(2, Math.max(user.length - 2, 0)))}****${vpa.slice(at)}`;
}

/** "+91 98765 43210" -> "******3210": the last 4 digits only. */
export function maskPhone(phone: string | null | undefined): string | null {
  if (!phone) return null;
  const digits = phone.replace(/\D/g, '');
  return digits.length <= 4 ? '****' : `******${digits.slice(-4)}`;
}

/**
 * A card number shows at most its BIN and last 4 digits (PCI DSS 3.4.1), and fewer when the PAN
 * is short enough that BIN + last 4 would leave under 6 digits hidden: "4111111111111111" ->
 * "411111******1111". Anything that is not 12–19 digits is masked completely.
 */
export function maskPan(pan: string | null | undefined): string | null {
  if (!pan) return null;
  const digits = pan.replace(/[\s-]/g, '');
  if (!/^\d{12,19}$/.test(digits)) return '****';
  const bin = digits.length >= 16 ? 6 : Math.max(0, digits.length - 4 - 6);
  return digits.slice(0, bin) + '*'.repeat(digits.length - bin - 4) + digits.slice(-4);
}

/** A bank account number by its last 4 digits: "000123456789" -> "********6789". */
export function maskBankAccount(account: string | null | undefined): string | null {
  if (!account) return null;
  return account.length <= 4 ? '****' : '*'.repeat(Math.min(account.length - 4, 12)) + account.slice(-4);
}

/** An IFSC by its bank code (first 4 letters) only: "HDFC0001234" -> "HDFC*******". */
export function maskIfsc(ifsc: string | null | undefined): string | null {
  if (!ifsc) return null;
  return ifsc.length <= 4 ? '****' : ifsc.slice(0, 4) + '*'.repeat(ifsc.length - 4);
}

/** A person's name by initials: "Ravi Kumar" -> "R*** K****". */
export function maskName(name: string | null | undefined): string | null {
  if (!name) return null;
  return name
    .trim()
    .split(/\s+/)
    .map((w) => (w.length <= 1 ? '*' : w[0] + '*'.repeat(Math.min(w.length - 1, 8))))
    .join(' ');
}

/**
 * Default VPA syntax: common practice (letters, digits, . - _ before @, letters after); NPCI caps
 * length at 255. A deployment may set its own (VPA_PATTERN, the payments settings).
 */
export const DEFAULT_VPA_PATTERN = '^[A-Za-z0-9._-]{2,256}@[A-Za-z][A-Za-z0-9]{1,63}$';
