// Edge protection: the public face of src/http/edge. See README.md beside this file.
export { createEdgeProtection, type EdgeProtection } from './protection.ts';
export { signInRateLimits, mfaRateLimits, type RouteRateLimit } from './rateLimit.ts';
export { createMemoryBucketStore, type BucketStore, type BucketSpec, type TakeResult } from './tokenBucket.ts';
export { createRedisBucketStore } from './redisBucketStore.ts';
export { measureJson, assertJsonWithinLimits, type JsonLimits } from './jsonLimits.ts';
export { API_CSP, CONSOLE_CSP } from './securityHeaders.ts';
export { readSecurityEvents, eventFromAuditLine, type SecurityEvent } from './securityEvents.ts';
export * from './gateway/index.ts';
