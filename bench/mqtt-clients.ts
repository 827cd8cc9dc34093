// A batch of simulated terminals for bench/mqtt.ts, in its own process (one Node process cannot
// hold 20,000 sockets on both ends under a 20,000 file-descriptor limit). Each connects with the
// SDK exactly as a terminal does (persistent session, subscribed to /res and /evt), then idles.
// Reads {url, terminals: [{id, password}]} from the file in argv[2]; reports JSON lines on stdout.
import { readFileSync } from 'node:fs';
import { connectTerminal, type TerminalClient } from '../src/tools/terminal-sdk/index.ts';

const {
  url,
  terminals,
  concurrency = 100,
} = JSON.parse(readFileSync(process.argv[2], 'utf8')) as {
  url: string;
  terminals: { id: string; password: string; cert?: string; key?: string; ca?: string }[];
  concurrency?: number;
};
const clients: TerminalClient[] = [];
let connected = 0;
let failed = 0;
let dropped = 0;
let lastError = '';
const say = (o: object) => process.stdout.write(JSON.stringify(o) + '\n');
process.on('uncaughtException', (e) => {
  process.stderr.write(`[mqtt-clients ${process.pid}] ${e.stack ?? e}\n`);
  process.exit(1);
});
const tick = setInterval(() => say({ connected, failed, dropped }), 500);

let next = 0;
await Promise.all(
  Array.from({ length: Math.min(concurrency, terminals.length) }, async () => {
    while (next < terminals.length) {
      const t = terminals[next++];
      try {
        const c = await connectTerminal({
          url,
          terminalId: t.id,
          reconnectPeriodMs: 0,
          connectTimeoutMs: 30_000,
          ...(t.cert ? { cert: t.cert, key: t.key, ca: t.ca } : { password: t.password }),
        });
        c.on('offline', () => dropped++);
        clients.push(c);
        connected++;
      } catch (e) {
        failed++;
        lastError = (e as Error).message;
      }
    }
  }),
);
clearInterval(tick);
say({ connected, failed, dropped, done: true, last_error: lastError || undefined });
setInterval(() => say({ connected, failed, dropped }), 1000);
process.on('SIGTERM', async () => {
  await Promise.allSettled(clients.map((c) => c.close()));
  process.exit(0);
});
