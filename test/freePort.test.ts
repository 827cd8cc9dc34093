import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { freePort, portTaken, withFreePorts } from '../src/platform/freePort.ts';
import { bankSimArgs, spawnUntil, stopProcess } from './helpers/processes.ts';

// A port found free can be taken before the listener that wants it binds it (CI once had
// `listen EADDRINUSE 127.0.0.1:39203` from the bank simulator a test started). The tests' listeners
// start through withFreePorts(), which starts them again on fresh ports when that happened: here a
// port is taken on purpose and handed out first.

const BIN = join(import.meta.dirname, '..', 'bin', 'tillpoint.mjs');

async function hold(): Promise<{ server: Server; port: number }> {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { server, port: (server.address() as { port: number }).port };
}

/** Hands out `first` once, then ports from freePort(). */
function takenFirst(first: number) {
  let handedOut = false;
  return async () => {
    if (handedOut) return freePort();
    handedOut = true;
    return first;
  };
}

describe('free ports', () => {
  test('freePort: free to bind, below the ephemeral range where the kernel has one, not the same twice in a row', async () => {
    let low = 32768;
    try {
      low = Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]);
    } catch {
      /* not Linux */
    }
    const ports = [await freePort(), await freePort(), await freePort()];
    assert.equal(new Set(ports).size, 3);
    for (const p of ports) {
      if (low - 10_000 >= 10_000) assert.ok(p >= 10_000 && p < low, `${p} is below ${low}`);
      const s = createServer();
      await new Promise<void>((r, j) => s.once('error', j).listen(p, '127.0.0.1', r));
      await new Promise((r) => s.close(r));
    }
  });

  test('a process whose port was taken before it bound it is started again on a fresh port', async () => {
    const taken = await hold();
    const failures: string[] = [];
    let used: number[] = [];
    try {
      const sim = await withFreePorts(
        1,
        async ([port]) => {
          used.push(port);
          try {
            return await spawnUntil(process.execPath, [BIN, ...bankSimArgs(port)], {
              env: { ...process.env, BANK_SIM_SECRET: 'free-port-test', LOG_LEVEL: 'warn' },
              ready: /listening/,
            });
          } catch (e) {
            failures.push((e as Error).message);
            throw e;
          }
        },
        { freePort: takenFirst(taken.port) },
      );
      try {
        assert.equal(used.length, 2, 'started twice');
        assert.equal(used[0], taken.port);
        assert.notEqual(used[1], taken.port);
        assert.equal(failures.length, 1);
        assert.match(failures[0], new RegExp(`EADDRINUSE.*127\\.0\\.0\\.1:${taken.port}`));
        // The simulator answers on its new port; the port held on purpose is still ours.
        const r = await fetch(`http://127.0.0.1:${used[1]}/sim/v1/customer-payments`, { method: 'POST' });
        assert.equal(r.status, 400);
        assert.equal((taken.server.address() as { port: number }).port, taken.port);
      } finally {
        await stopProcess(sim.child);
      }
    } finally {
      taken.server.close();
    }
    // In-process listeners (startTestApp's API) fail the same way, and are retried the same way.
    used = [];
    const other = await hold();
    try {
      const s = await withFreePorts(
        1,
        async ([port]) => {
          used.push(port);
          const server = createServer();
          await new Promise<void>((r, j) => server.once('error', j).listen(port, '127.0.0.1', r));
          return server;
        },
        { freePort: takenFirst(other.port) },
      );
      assert.deepEqual(used.length, 2);
      assert.equal((s.address() as { port: number }).port, used[1]);
      s.close();
    } finally {
      other.server.close();
    }
  });

  test('it gives up after the attempts it was given, and any other failure is not retried', async () => {
    const taken = await hold();
    try {
      let starts = 0;
      await assert.rejects(
        withFreePorts(
          1,
          async ([port]) => {
            starts++;
            const server = createServer();
            await new Promise<void>((r, j) => server.once('error', j).listen(port, '127.0.0.1', r));
            return server;
          },
          { attempts: 3, freePort: async () => taken.port },
        ),
        { code: 'EADDRINUSE' },
      );
      assert.equal(starts, 3);
      starts = 0;
      await assert.rejects(
        withFreePorts(1, async () => {
          starts++;
          throw new Error('the configuration is wrong');
        }),
        /the configuration is wrong/,
      );
      assert.equal(starts, 1);
    } finally {
      taken.server.close();
    }
  });

  test('portTaken: only an address-in-use failure naming one of the ports (or none)', () => {
    assert.equal(
      portTaken(new Error('tillpoint: listen EADDRINUSE: address already in use 127.0.0.1:39203'), [39203]),
      true,
    );
    assert.equal(portTaken(new Error('listen EADDRINUSE: address already in use 127.0.0.1:39203'), [40000]), false);
    assert.equal(
      portTaken(new Error('nginx: [emerg] bind() to 127.0.0.1:41000 failed (98: Address already in use)'), [41000]),
      true,
    );
    assert.equal(
      portTaken(
        new Error(
          '2026-12-03 20:45:12 UTC LOG: could not bind IPv4 address "127.0.0.1": Address already in use\nIs another postmaster already running on port 25432?',
        ),
        [25432],
      ),
      true,
    );
    assert.equal(portTaken(new Error('Address already in use'), [25432]), true);
    assert.equal(portTaken(new Error('connect ECONNREFUSED 127.0.0.1:39203'), [39203]), false);
  });
});
