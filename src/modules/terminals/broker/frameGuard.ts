import type { Duplex } from 'node:stream';

// A byte bound on MQTT frames, at the transport. Aedes's parser buffers a whole packet before
// it looks at it, and MQTT allows packets of up to 256 MiB, so one client could make the gateway
// hold that much memory; Aedes's own docs say to pair it with a transport-level frame limit.
// This reads only the fixed header's Remaining Length (MQTT 3.1.1 §2.2.3, 1-4 bytes, 7 bits
// each) of every frame as the bytes go by, and drops the connection when a frame announces more
// than the limit, before its body arrives. It parses nothing else: Aedes does the MQTT.

export interface FrameScanner {
  /** Feeds bytes; returns the first frame length above the limit, or -1 for a malformed length, or undefined. */
  push(chunk: Buffer): number | undefined;
}

export function createFrameScanner(maxRemainingLength: number): FrameScanner {
  // state: expecting the first header byte (0), reading length bytes (1), skipping a body (2)
  let state = 0;
  let length = 0;
  let multiplier = 1;
  let lengthBytes = 0;
  let toSkip = 0;
  return {
    push(chunk: Buffer) {
      let i = 0;
      while (i < chunk.length) {
        if (state === 0) {
          i++;
          state = 1;
          length = 0;
          multiplier = 1;
          lengthBytes = 0;
        } else if (state === 1) {
          const b = chunk[i++];
          length += (b & 0x7f) * multiplier;
          multiplier *= 128;
          lengthBytes++;
          if (length > maxRemainingLength) return length;
          if (b & 0x80) {
            if (lengthBytes === 4) return -1;
            continue;
          }
          toSkip = length;
          state = toSkip === 0 ? 0 : 2;
        } else {
          const n = Math.min(toSkip, chunk.length - i);
          i += n;
          toSkip -= n;
          if (toSkip === 0) state = 0;
        }
      }
      return undefined;
    },
  };
}

/**
 * Watches what Aedes reads from `conn`. Attach after `aedes.handle(conn)`: Aedes reads with
 * 'readable' + read(), so this 'data' listener sees each chunk as Aedes takes it, without
 * switching the stream to flowing mode or copying anything.
 */
export function guardFrames(conn: Duplex, maxRemainingLength: number, onViolation: (announced: number) => void) {
  const scanner = createFrameScanner(maxRemainingLength);
  const onData = (chunk: Buffer) => {
    const bad = scanner.push(chunk);
    if (bad === undefined) return;
    conn.removeListener('data', onData);
    onViolation(bad);
    conn.destroy();
  };
  conn.on('data', onData);
}
