// HTTP calls for tests, without the app: the tests that run the platform as processes import
// these (and nothing of src/app.ts, whose import graph is ~0.7 s of CPU to load).

export interface Res<T = any> {
  status: number;
  body: T;
  headers: Headers;
}

/** One HTTP call: a body that is not a string is sent as JSON; the answer is parsed as JSON when it is JSON. */
export async function httpJson<T = any>(
  url: string,
  method: string,
  body?: unknown,
  headers: Record<string, string> = {},
): Promise<Res<T>> {
  const h: Record<string, string> = { ...headers };
  let payload: string | undefined;
  if (body !== undefined) {
    payload = typeof body === 'string' ? body : JSON.stringify(body);
    h['content-type'] ??= 'application/json';
  }
  const r = await fetch(url, { method, headers: h, body: payload });
  const text = await r.text();
  let parsed: unknown = text;
  try {
    parsed = text ? JSON.parse(text) : undefined;
  } catch {
    /* not JSON */
  }
  return { status: r.status, body: parsed as T, headers: r.headers };
}

/** One call to a Tillpoint API at `base` with an API key (tests that run the platform as processes). */
export function apiCall<T = any>(base: string, key: string, method: string, path: string, body?: unknown) {
  return httpJson<T>(base + path, method, body, { authorization: `Bearer ${key}` });
}
