// The dashboard's token: read once from `?token=` (the URL `switchboard` prints), kept in
// sessionStorage (gone when the tab closes), and removed from the address bar at once so it
// never lands in the browser history or a shared screenshot of the URL.

const KEY = 'switchboard.token';

export function takeTokenFromUrl(): string | null {
  const url = new URL(window.location.href);
  const token = url.searchParams.get('token');
  if (token === null) return null;
  url.searchParams.delete('token');
  window.history.replaceState(window.history.state, '', url.pathname + url.search + url.hash);
  return token.trim() || null;
}

export function storedToken(): string | null {
  try {
    return window.sessionStorage.getItem(KEY);
  } catch {
    return null;
  }
}

export function storeToken(token: string | null): void {
  try {
    if (token) window.sessionStorage.setItem(KEY, token);
    else window.sessionStorage.removeItem(KEY);
  } catch {
    // Storage disabled: the token lives only as long as the page.
  }
}

/** The `sub` and `exp` of a JWT, for the header; nothing is verified here. */
export function tokenClaims(token: string): { sub?: string; exp?: number; role?: string } {
  try {
    const part = token.split('.')[1] ?? '';
    const json = atob(part.replace(/-/g, '+').replace(/_/g, '/'));
    const claims = JSON.parse(json) as { sub?: unknown; exp?: unknown; role?: unknown };
    return {
      sub: typeof claims.sub === 'string' ? claims.sub : undefined,
      exp: typeof claims.exp === 'number' ? claims.exp : undefined,
      role: typeof claims.role === 'string' ? claims.role : undefined,
    };
  } catch {
    return {};
  }
}
