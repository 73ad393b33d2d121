// The gateway's HTTP API, called with the signed-in token as `Authorization: Bearer`.

export class ApiError extends Error {
  constructor(readonly status: number, readonly code: string, message: string) {
    super(message);
  }
  /** `code: message (HTTP status)` for people. */
  describe(): string {
    return `${this.code}: ${this.message}${this.status ? ` (HTTP ${this.status})` : ''}`;
  }
}

let currentToken: string | null = null;

export function setApiToken(token: string | null): void {
  currentToken = token;
}

export async function api<T>(path: string, init: { method?: string; body?: unknown; timeoutMs?: number } = {}): Promise<T> {
  const headers: Record<string, string> = {};
  if (currentToken) headers.Authorization = `Bearer ${currentToken}`;
  if (init.body !== undefined) headers['Content-Type'] = 'application/json';
  let response: Response;
  try {
    response = await fetch(path, {
      method: init.method ?? 'GET',
      headers,
      body: init.body === undefined ? undefined : JSON.stringify(init.body),
      cache: 'no-store',
      signal: AbortSignal.timeout(init.timeoutMs ?? 10_000),
    });
  } catch (error) {
    const name = (error as { name?: string }).name;
    throw new ApiError(0, name === 'TimeoutError' ? 'timeout' : 'network_error', name === 'TimeoutError' ? 'no answer in time' : 'the gateway cannot be reached');
  }
  const text = await response.text();
  let body: unknown = null;
  try {
    body = text ? JSON.parse(text) : null;
  } catch {
    body = null;
  }
  if (!response.ok) {
    const error = (body as { error?: { code?: string; message?: string } } | null)?.error;
    throw new ApiError(response.status, error?.code ?? `http_${response.status}`, error?.message ?? (response.statusText || 'request failed'));
  }
  return body as T;
}

export function describeError(error: unknown): string {
  if (error instanceof ApiError) return error.describe();
  return String((error as Error)?.message ?? error);
}

/** `ws(s)://<this host><path>`: the gateway that served the page. */
export function socketUrl(path: string): string {
  return `${window.location.protocol === 'https:' ? 'wss:' : 'ws:'}//${window.location.host}${path}`;
}
