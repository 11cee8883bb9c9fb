// Who is signed in. The API key is held for the browser tab's session only (sessionStorage):
// closing the tab signs out, and it is never written anywhere that outlives it.
const KEY = 'cairn.session';

export interface Session {
  /** The control-plane API key, sent as a Bearer token to the control plane only. */
  readonly apiKey: string;
}

export function readSession(): Session | null {
  const raw = sessionStorage.getItem(KEY);
  if (raw === null) return null;
  try {
    const parsed = JSON.parse(raw) as Partial<Session>;
    return typeof parsed.apiKey === 'string' && parsed.apiKey !== '' ? { apiKey: parsed.apiKey } : null;
  } catch {
    return null;
  }
}

export function writeSession(session: Session): void {
  sessionStorage.setItem(KEY, JSON.stringify(session));
}

export function clearSession(): void {
  sessionStorage.removeItem(KEY);
}
