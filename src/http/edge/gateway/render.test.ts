import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GATEWAY_DEFAULTS, renderGatewayConfig, type GatewaySettings } from './render.ts';
import type { GatewayPrerequisites } from './prerequisites.ts';

// Rendering only (no nginx needed): test/gateway.waf.test.ts runs the rendered files in nginx.

function fakeCrs(): GatewayPrerequisites {
  const dir = mkdtempSync(join(tmpdir(), 'tp-crs-'));
  for (const f of [
    'REQUEST-901-INITIALIZATION.conf',
    'REQUEST-942-APPLICATION-ATTACK-SQLI.conf',
    'REQUEST-949-BLOCKING-EVALUATION.conf',
    'RESPONSE-959-BLOCKING-EVALUATION.conf',
    'unix-shell.data',
  ]) {
    writeFileSync(join(dir, f), '');
  }
  return {
    nginxBin: '/usr/sbin/nginx',
    modsecurityModule: '/usr/lib/nginx/modules/ngx_http_modsecurity_module.so',
    crsRulesDir: dir,
    crsVersion: '3.3.4',
    unicodeMapping: '/etc/nginx/unicode.mapping',
  };
}

const settings = (over: Partial<GatewaySettings> = {}): GatewaySettings => ({
  ...GATEWAY_DEFAULTS,
  dir: '/srv/tillpoint/data/gateway',
  listen: { host: '127.0.0.1', port: 8081 },
  upstreams: [
    { host: '10.0.0.11', port: 8080 },
    { host: '10.0.0.12', port: 8080 },
  ],
  bodyLimitBytes: 65536,
  headerBufferBytes: 16384,
  jsonMaxDepth: 32,
  ...over,
});

test('every placeholder is filled; upstreams, limits and CRS files land where they belong', () => {
  const files = renderGatewayConfig(settings({ paranoia: 2 }), fakeCrs());
  for (const [name, text] of files) assert.ok(!/\{\{[A-Z_]+\}\}/.test(text), `${name} has an unfilled placeholder`);
  const nginx = files.get('nginx.conf')!;
  assert.match(nginx, /server 10\.0\.0\.11:8080;\s+server 10\.0\.0\.12:8080;/);
  assert.match(nginx, /listen 127\.0\.0\.1:8081;/);
  assert.match(nginx, /client_max_body_size 65536;/);
  assert.doesNotMatch(nginx, /ssl_certificate/);
  const main = files.get('modsecurity/main.conf')!;
  // Tillpoint's rules run after the CRS detections and before the blocking evaluation.
  const order = [
    'REQUEST-901',
    'REQUEST-942',
    'tillpoint-rules.conf',
    'REQUEST-949',
    'RESPONSE-959',
    'tillpoint-after-crs.conf',
  ].map((s) => main.indexOf(s));
  assert.deepEqual(
    [...order].sort((a, b) => a - b),
    order,
    main,
  );
  assert.ok(!main.includes('.data'), 'data files are not rule files');
  assert.match(files.get('modsecurity/crs-setup.conf')!, /setvar:tx\.paranoia_level=2/);
  assert.match(files.get('modsecurity/modsecurity.conf')!, /^SecRuleEngine On$/m);
});

test("TLS: 1.2 and 1.3 only, HSTS on the gateway's own answers; detection-only mode", () => {
  const files = renderGatewayConfig(
    settings({ tls: { certFile: '/etc/tp/cert.pem', keyFile: '/etc/tp/key.pem' }, detectionOnly: true }),
    fakeCrs(),
  );
  const nginx = files.get('nginx.conf')!;
  assert.match(nginx, /listen 127\.0\.0\.1:8081 ssl http2;/);
  assert.match(nginx, /ssl_protocols TLSv1\.2 TLSv1\.3;/);
  assert.match(files.get('error-headers.conf')!, /Strict-Transport-Security "max-age=31536000; includeSubDomains"/);
  assert.match(files.get('modsecurity/modsecurity.conf')!, /^SecRuleEngine DetectionOnly$/m);
});

test('values that could inject configuration are refused', () => {
  assert.throws(
    () => renderGatewayConfig(settings({ dir: '/tmp/x"; include /etc/passwd; "' }), fakeCrs()),
    /not allowed/,
  );
  assert.throws(
    () => renderGatewayConfig(settings({ upstreams: [{ host: 'a;b', port: 1 }] }), fakeCrs()),
    /not allowed|bad host/,
  );
  assert.throws(
    () => renderGatewayConfig(settings({ tls: { certFile: '/x/$host', keyFile: '/k' } }), fakeCrs()),
    /not allowed/,
  );
  assert.throws(() => renderGatewayConfig(settings({ paranoia: 5 as 1 }), fakeCrs()), /paranoia/);
  assert.throws(() => renderGatewayConfig(settings({ upstreams: [] }), fakeCrs()), /upstream/);
});
