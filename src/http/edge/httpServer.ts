import type { Socket } from 'node:net';
import type { Server, ServerOptions as NodeServerOptions } from 'node:http';
import type { HttpConfig } from '../../platform/config.ts';
import { ERROR_STATUS, type ErrorCode } from '../../platform/errors.ts';
import { newId } from '../../platform/ids.ts';
import type { EdgeMetrics } from './metrics.ts';

// Slow-client protection and connection caps on Node's HTTP server.
//
//   headersTimeout       the whole request line and headers must arrive within this (slowloris)
//   requestTimeout       the whole request, body included, within this (slow POST)
//   idle timeout         a connection with no traffic at all is closed
//   keepAliveTimeout     an idle keep-alive connection between requests is closed
//   maxConnections       connections past this are closed at accept
//   maxHeaderSize        request line + headers larger than this are refused with 431
//
// Node checks the first two on a timer (connectionsCheckingInterval, default 30 s); it is set
// to 1 s here so that a limit of a few seconds is enforced within a second of passing.

const CHECK_INTERVAL_MS = 1_000;

interface ServerOptions {
  requestTimeout: number;
  connectionTimeout: number;
  keepAliveTimeout: number;
  http: NodeServerOptions;
  trustProxy: string[] | false;
  clientErrorHandler: (err: Error, socket: Socket) => void;
}

export function httpServerOptions(http: HttpConfig, metrics: EdgeMetrics): ServerOptions {
  return {
    requestTimeout: http.requestTimeoutMs,
    connectionTimeout: http.idleTimeoutMs,
    keepAliveTimeout: http.keepAliveTimeoutMs,
    http: {
      maxHeaderSize: http.maxHeaderBytes,
      headersTimeout: http.headersTimeoutMs,
      requestTimeout: http.requestTimeoutMs,
      connectionsCheckingInterval: Math.min(CHECK_INTERVAL_MS, http.headersTimeoutMs),
    },
    // Only the proxies listed (the WAF gateway, a load balancer) may say who the client is.
    trustProxy: http.trustProxy.length > 0 ? http.trustProxy : false,
    clientErrorHandler: (err, socket) => clientError(err as Error & { code?: string }, socket, metrics),
  };
}

/** Errors Node raises before a request reaches Fastify: answered in our error shape, then closed. */
function clientError(err: Error & { code?: string }, socket: Socket, metrics: EdgeMetrics) {
  if (err.code === 'ECONNRESET' || socket.destroyed) return;
  let code: ErrorCode;
  let message: string;
  if (err.code === 'ERR_HTTP_REQUEST_TIMEOUT') {
    code = 'request_timeout';
    message = 'The request was not received in time';
  } else if (err.code === 'HPE_HEADER_OVERFLOW') {
    code = 'headers_too_large';
    message = 'The request headers are too large';
  } else {
    code = 'invalid_request';
    message = 'The request is malformed';
  }
  metrics.requestsRefused.inc({ reason: code });
  const requestId = newId('request');
  const body = JSON.stringify({ error: { code, message, request_id: requestId } });
  if (socket.writable) {
    socket.write(
      `HTTP/1.1 ${ERROR_STATUS[code]} ${code.replace(/_/g, ' ')}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n` +
        `X-Request-Id: ${requestId}\r\nX-Content-Type-Options: nosniff\r\nConnection: close\r\n\r\n${body}`,
    );
  }
  socket.destroy();
}

/** Caps open connections; the ones past the cap are closed at accept and counted. */
export function applyConnectionCap(server: Server, maxConnections: number, metrics: EdgeMetrics) {
  if (maxConnections > 0) server.maxConnections = maxConnections;
  server.on('drop', () => metrics.connectionsDropped.inc());
}
