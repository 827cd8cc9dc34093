// The image's HEALTHCHECK: asks the role's health port (HEALTH_PORT, src/cli/health.ts) whether
// it is ready. Plain node:http, no dependencies, exits 0 (healthy) or 1 (unhealthy) within 4 s.
import { get } from 'node:http';

const port = Number(process.env.HEALTH_PORT);
if (!Number.isInteger(port) || port <= 0) {
  console.error('HEALTH_PORT is not set: the health check has nothing to ask');
  process.exit(1);
}
const bind = process.env.HOST;
const host = !bind || bind === '0.0.0.0' || bind === '::' ? '127.0.0.1' : bind;
const req = get({ host, port, path: '/readyz', timeout: 4000 }, (res) => {
  res.resume();
  process.exit(res.statusCode === 200 ? 0 : 1);
});
req.on('timeout', () => req.destroy(new Error('timed out')));
req.on('error', (e) => {
  console.error(`health check: ${e.message}`);
  process.exit(1);
});
