import { accessSync, constants, existsSync, readFileSync, readdirSync } from 'node:fs';
import { delimiter, join } from 'node:path';

// What the gateway needs on the machine: nginx, the ModSecurity v3 connector module, the
// OWASP CRS rules and ModSecurity's unicode mapping. Debian/Ubuntu ship all four in three
// packages; the message when one is missing names them.

export const DEBIAN_PACKAGES = ['nginx', 'libnginx-mod-http-modsecurity', 'modsecurity-crs'] as const;
export const INSTALL_HINT = `On Debian or Ubuntu: apt-get install -y ${DEBIAN_PACKAGES.join(' ')}`;

export interface GatewayPrerequisites {
  nginxBin: string;
  modsecurityModule: string;
  crsRulesDir: string;
  /** e.g. "3.3.4", read from the rules themselves. */
  crsVersion: string;
  unicodeMapping: string;
}

export class GatewayPrerequisiteError extends Error {
  constructor(message: string) {
    super(`${message}\n${INSTALL_HINT}`);
    this.name = 'GatewayPrerequisiteError';
  }
}

export interface PrerequisiteOverrides {
  nginxBin?: string;
  modsecurityModule?: string;
  crsRulesDir?: string;
  unicodeMapping?: string;
}

function executable(p: string): boolean {
  try {
    accessSync(p, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

function findNginx(): string | undefined {
  const dirs = [...(process.env.PATH ?? '').split(delimiter), '/usr/sbin', '/usr/local/sbin', '/usr/local/nginx/sbin'];
  for (const d of dirs) {
    if (d && executable(join(d, 'nginx'))) return join(d, 'nginx');
  }
  return undefined;
}

const MODULE_CANDIDATES = [
  '/usr/lib/nginx/modules/ngx_http_modsecurity_module.so',
  '/usr/lib64/nginx/modules/ngx_http_modsecurity_module.so',
  '/usr/local/nginx/modules/ngx_http_modsecurity_module.so',
];
const CRS_CANDIDATES = [
  '/usr/share/modsecurity-crs/rules',
  '/usr/share/owasp-modsecurity-crs/rules',
  '/etc/nginx/modsec/coreruleset/rules',
];
const UNICODE_CANDIDATES = [
  '/etc/nginx/unicode.mapping',
  '/usr/share/nginx/docs/modsecurity/unicode.mapping',
  '/etc/modsecurity/unicode.mapping',
];

export function locatePrerequisites(o: PrerequisiteOverrides = {}): GatewayPrerequisites {
  const nginxBin = o.nginxBin ?? findNginx();
  if (!nginxBin || !executable(nginxBin)) {
    throw new GatewayPrerequisiteError(
      o.nginxBin
        ? `nginx is not executable at ${o.nginxBin}.`
        : 'nginx is not installed (looked on PATH and in /usr/sbin).',
    );
  }
  const modsecurityModule = o.modsecurityModule ?? MODULE_CANDIDATES.find((p) => existsSync(p));
  if (!modsecurityModule || !existsSync(modsecurityModule)) {
    throw new GatewayPrerequisiteError(
      `The ModSecurity v3 module for nginx is not installed (looked for ${o.modsecurityModule ?? MODULE_CANDIDATES[0]}).`,
    );
  }
  const crsRulesDir =
    o.crsRulesDir ?? CRS_CANDIDATES.find((p) => existsSync(join(p, 'REQUEST-949-BLOCKING-EVALUATION.conf')));
  if (!crsRulesDir || !existsSync(join(crsRulesDir, 'REQUEST-949-BLOCKING-EVALUATION.conf'))) {
    throw new GatewayPrerequisiteError(
      `The OWASP Core Rule Set is not installed (looked for ${o.crsRulesDir ?? CRS_CANDIDATES[0]}).`,
    );
  }
  const unicodeMapping = o.unicodeMapping ?? UNICODE_CANDIDATES.find((p) => existsSync(p));
  if (!unicodeMapping || !existsSync(unicodeMapping)) {
    throw new GatewayPrerequisiteError(
      `ModSecurity's unicode.mapping is missing (looked for ${o.unicodeMapping ?? UNICODE_CANDIDATES[0]}).`,
    );
  }
  const ver = /ver:'OWASP_CRS\/([0-9.]+)'/.exec(
    readFileSync(join(crsRulesDir, 'REQUEST-949-BLOCKING-EVALUATION.conf'), 'utf8'),
  );
  const crsVersion = ver ? ver[1] : 'unknown';
  if (!crsVersion.startsWith('3.')) {
    // The setup file and exclusions are written for CRS 3.x variable and rule names.
    throw new GatewayPrerequisiteError(
      `OWASP CRS ${crsVersion} found in ${crsRulesDir}; this gateway's configuration is written for CRS 3.x.`,
    );
  }
  return { nginxBin, modsecurityModule, crsRulesDir, crsVersion, unicodeMapping };
}

/** The CRS rule files, split where Tillpoint's own rules go in (before the blocking evaluation). */
export function crsRuleFiles(rulesDir: string): { request: string[]; blocking: string[]; response: string[] } {
  const files = readdirSync(rulesDir)
    .filter((f) => f.endsWith('.conf'))
    .sort();
  const blocking = files.filter((f) => f.startsWith('REQUEST-949-'));
  const request = files.filter((f) => f.startsWith('REQUEST-') && !blocking.includes(f));
  const response = files.filter((f) => f.startsWith('RESPONSE-'));
  return {
    request: request.map((f) => join(rulesDir, f)),
    blocking: blocking.map((f) => join(rulesDir, f)),
    response: response.map((f) => join(rulesDir, f)),
  };
}
