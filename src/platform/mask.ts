// One masking function per kind of sensitive value, used by every response and log line.

/** "rahul.k@okaxis" -> "ra****@okaxis" */
export function maskVpa(vpa: string | null | undefined): string | null {
  if (!vpa) return null;
  const at = vpa.lastIndexOf('@');
  if (at < 0) return '****';
  const user = vpa.slice(0, at);
  return `${user.slice(0, Math.min(2, Math.max(user.length - 2, 0)))}****${vpa.slice(at)}`;
}
