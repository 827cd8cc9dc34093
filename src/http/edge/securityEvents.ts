import { closeSync, existsSync, openSync, readSync, statSync, readFileSync } from 'node:fs';

// Security events: what the WAF gateway did, one JSON object per line in
// <data dir>/gateway/security-events.jsonl (SECURITY_EVENTS_FILE). The gateway supervisor
// (`tillpoint gateway start`) is the only writer: it reads ModSecurity's JSON audit log and
// turns each entry into one event. The API reads the file to count events in its metrics,
// and `tillpoint gateway events` prints it.
//
// An event names who, when, what and which rules, never the values that matched: the audit
// log's matched data can hold a VPA or a key when a rule fires on legitimate traffic. The raw
// audit log (mode 0600, beside it) keeps the full detail for an investigation.

export interface SecurityEventRule {
  id: string;
  message: string;
  /** ModSecurity severity: 0 emergency … 2 critical, 3 error, 4 warning, 5 notice. */
  severity: number;
  /** Where it matched: ARGS:json.note, REQUEST_HEADERS:User-Agent, REQUEST_URI… (names only). */
  targets: string[];
}

export interface SecurityEvent {
  /** The request id: X-Request-Id, the error body's request_id, the API's log, the audit log. */
  id: string;
  at: string;
  source: 'waf';
  /** blocked: refused at the gateway. detected: rules matched below the blocking threshold. */
  action: 'blocked' | 'detected';
  /** The status the client received. */
  status: number;
  client_ip: string;
  method: string;
  /** The path without the query string (queries can carry personal data). */
  path: string;
  /** sqli, xss, rce, lfi, rfi, ssrf, java, php, nodejs, protocol, generic, … */
  category: string;
  anomaly_score?: number;
  rules: SecurityEventRule[];
}

/** Private statuses of the gateway's waf server (see deploy/gateway/nginx.conf.template) -> what the client got. */
export const WAF_BLOCK_STATUSES: Readonly<Record<number, number>> = { 460: 403, 461: 400 };

/** Rules that evaluate or report rather than detect: kept out of an event's rule list. */
const BOOKKEEPING_RULES = new Set(['949110', '949100', '959100', '980130', '980140']);

interface AuditMessage {
  message?: string;
  details?: { ruleId?: string; match?: string; severity?: string; tags?: string[] };
}
interface AuditEntry {
  transaction?: {
    client_ip?: string;
    time_stamp?: string;
    unique_id?: string;
    request?: { method?: string; uri?: string };
    response?: { http_code?: number };
    messages?: AuditMessage[];
  };
}

/**
 * One line of ModSecurity v3's JSON audit log (SecAuditLogFormat JSON) -> one event, or null
 * when the line is not an entry or no rule matched.
 */
export function eventFromAuditLine(line: string, now: () => Date = () => new Date()): SecurityEvent | null {
  let entry: AuditEntry;
  try {
    entry = JSON.parse(line) as AuditEntry;
  } catch {
    return null;
  }
  const tx = entry.transaction;
  if (!tx || !Array.isArray(tx.messages) || tx.messages.length === 0) return null;
  const httpCode = Number(tx.response?.http_code ?? 0);
  const blockedAs = WAF_BLOCK_STATUSES[httpCode];

  const rules: SecurityEventRule[] = [];
  let anomalyScore: number | undefined;
  let category = 'generic';
  let bestSeverity = Number.POSITIVE_INFINITY;
  for (const m of tx.messages) {
    const id = String(m.details?.ruleId ?? '');
    const message = String(m.message ?? '');
    if (id === '949110') {
      const s = /Total Score: (\d+)/.exec(message);
      if (s) anomalyScore = Number(s[1]);
    }
    if (BOOKKEEPING_RULES.has(id)) continue;
    const severity = Number(m.details?.severity ?? 5);
    rules.push({
      id,
      message: message.slice(0, 200),
      severity,
      targets: targetsOf(m.details?.match, (m.details as { data?: string })?.data),
    });
    const c = categoryOf(m.details?.tags ?? []) ?? CRS_CATEGORIES[id.slice(0, 3)];
    if (c && severity < bestSeverity) {
      bestSeverity = severity;
      category = c;
    }
  }
  if (rules.length === 0 && !blockedAs) return null;

  const uri = String(tx.request?.uri ?? '');
  return {
    id: String(tx.unique_id ?? ''),
    at: toIso(tx.time_stamp) ?? now().toISOString(),
    source: 'waf',
    action: blockedAs ? 'blocked' : 'detected',
    status: blockedAs ?? httpCode,
    client_ip: String(tx.client_ip ?? ''),
    method: String(tx.request?.method ?? ''),
    path: uri.split('?')[0].slice(0, 300),
    category,
    ...(anomalyScore === undefined ? {} : { anomaly_score: anomalyScore }),
    rules,
  };
}

/**
 * CRS rule files by the first three digits of their rule ids. ModSecurity 3.0.9 leaves `tags`
 * empty in the audit log for some rules (the libinjection ones), so the id decides then.
 */
const CRS_CATEGORIES: Record<string, string> = {
  '200': 'protocol',
  '911': 'protocol',
  '912': 'dos',
  '913': 'scanner',
  '920': 'protocol',
  '921': 'protocol',
  '930': 'lfi',
  '931': 'rfi',
  '932': 'rce',
  '933': 'php',
  '934': 'nodejs',
  '941': 'xss',
  '942': 'sqli',
  '943': 'session-fixation',
  '944': 'java',
};

/** "attack-sqli" -> "sqli", "attack-injection-java" -> "java"; the first attack-* tag wins. */
export function categoryOf(tags: string[]): string | undefined {
  for (const t of tags) {
    if (!t.startsWith('attack-')) continue;
    return t.slice('attack-'.length).replace(/^injection-/, '');
  }
  return undefined;
}

/**
 * Variable names only, from the match text ("… against variable `ARGS:json.note' (Value: …")
 * or the CRS log data ("Matched Data: … found within ARGS:json.note: …"). Never the values.
 */
function targetsOf(match: string | undefined, data: string | undefined): string[] {
  const out = new Set<string>();
  for (const m of (match ?? '').matchAll(/against variable `([A-Z_]+(?::[^'\s]{1,200})?)'/g)) out.add(m[1]);
  for (const m of (data ?? '').matchAll(/found within ([A-Z_]+(?::[A-Za-z0-9_.\-[\]]{1,200})?)/g)) out.add(m[1]);
  return [...out];
}

/** ModSecurity writes ctime-style local time ("Wed Nov 25 20:57:06 2026"): read it as local time. */
function toIso(stamp: string | undefined): string | undefined {
  if (!stamp) return undefined;
  const t = Date.parse(stamp);
  return Number.isFinite(t) ? new Date(t).toISOString() : undefined;
}

/** The last `limit` events of an events file (all of them when it is small). */
export function readSecurityEvents(file: string, opts: { limit?: number } = {}): SecurityEvent[] {
  if (!existsSync(file)) return [];
  const lines = readFileSync(file, 'utf8').split('\n').filter(Boolean);
  const picked = opts.limit ? lines.slice(-opts.limit) : lines;
  const out: SecurityEvent[] = [];
  for (const l of picked) {
    try {
      out.push(JSON.parse(l) as SecurityEvent);
    } catch {
      /* a line being written right now */
    }
  }
  return out;
}

/**
 * Follows a growing line-oriented file by polling its size: hands each complete new line to
 * `onLine`. Starts at `startAt` ('end': only lines written from now on; 'start': everything).
 * Copes with the file appearing later (read from its start), and with rotation or truncation
 * (a new inode or a smaller size: read the new file from its start).
 */
export function followLines(
  file: string,
  onLine: (line: string) => void,
  opts: {
    startAt: 'start' | 'end' | number;
    intervalMs?: number;
    onOffset?: (ino: number, offset: number) => void;
    ino?: number;
  },
) {
  let offset = 0;
  let ino: number | undefined;
  // Bytes after the last newline: kept as bytes, so a character split across reads survives.
  let partial: Buffer = Buffer.alloc(0);
  let timer: NodeJS.Timeout | undefined;
  if (existsSync(file)) {
    const st = statSync(file);
    ino = st.ino;
    if (opts.startAt === 'end') offset = st.size;
    else if (
      typeof opts.startAt === 'number' &&
      (opts.ino === undefined || opts.ino === st.ino) &&
      opts.startAt <= st.size
    )
      offset = opts.startAt;
  }

  function poll() {
    let st;
    try {
      st = statSync(file);
    } catch {
      return; // not there (yet)
    }
    if (ino !== undefined && (st.ino !== ino || st.size < offset)) {
      offset = 0;
      partial = Buffer.alloc(0);
    }
    ino = st.ino;
    if (st.size <= offset) return;
    const fd = openSync(file, 'r');
    let chunk: Buffer;
    try {
      chunk = Buffer.alloc(Math.min(st.size - offset, 8 * 1024 * 1024));
      const n = readSync(fd, chunk, 0, chunk.length, offset);
      offset += n;
      chunk = chunk.subarray(0, n);
    } finally {
      closeSync(fd);
    }
    const data = partial.length ? Buffer.concat([partial, chunk]) : chunk;
    const end = data.lastIndexOf(0x0a);
    if (end < 0) {
      partial = data;
    } else {
      partial = Buffer.from(data.subarray(end + 1));
      for (const l of data.subarray(0, end).toString('utf8').split('\n')) {
        if (!l.trim()) continue;
        try {
          onLine(l);
        } catch {
          /* one bad line must not stop the follower */
        }
      }
    }
    opts.onOffset?.(ino, offset - partial.length);
  }

  function schedule() {
    timer = setTimeout(() => {
      try {
        poll();
      } finally {
        if (timer) schedule();
      }
    }, opts.intervalMs ?? 250);
    timer.unref();
  }
  schedule();
  return {
    /** Reads whatever is new right now (tests, and a last read before stopping). */
    poll,
    stop() {
      clearTimeout(timer);
      timer = undefined;
    },
  };
}
