// Where each data plane's gateway is, configured in this browser and never sent to the control
// plane. URLs are kept on this device (localStorage); a gateway token is kept for the tab's
// session unless the user asks to remember it on this device.
import { useSyncExternalStore } from 'react';

/** The configuration that applies to data planes without one of their own. */
export const ANY_DATA_PLANE = '*';

export interface GatewayConfig {
  /** The gateway's base URL as this browser reaches it, e.g. `https://gateway.internal.example.com`. */
  readonly url: string;
  /** A gateway token (scopes read, and signal/start for the actions that need them). */
  readonly token: string;
  /** Whether the token is kept in localStorage (on this device) rather than for this tab only. */
  readonly remember: boolean;
}

const URLS = 'cairn.gateways';
const TOKENS = 'cairn.gateway-tokens';

type Stored = Record<string, { url: string; token?: string }>;

function load(storage: Storage, key: string): Stored {
  try {
    const parsed = JSON.parse(storage.getItem(key) ?? '{}') as unknown;
    return parsed !== null && typeof parsed === 'object' ? (parsed as Stored) : {};
  } catch {
    return {};
  }
}

let version = 0;
const listeners = new Set<() => void>();
const changed = (): void => {
  version++;
  for (const listener of listeners) listener();
};
window.addEventListener('storage', changed);

/** Every configured gateway, by data-plane ID (or {@link ANY_DATA_PLANE}). */
export function readGateways(): Record<string, GatewayConfig> {
  const urls = load(localStorage, URLS);
  const sessionTokens = load(sessionStorage, TOKENS);
  const out: Record<string, GatewayConfig> = {};
  for (const [id, entry] of Object.entries(urls)) {
    if (typeof entry.url !== 'string') continue;
    const remembered = typeof entry.token === 'string' ? entry.token : undefined;
    const token = remembered ?? sessionTokens[id]?.token ?? '';
    out[id] = { url: entry.url, token, remember: remembered !== undefined };
  }
  return out;
}

/** The gateway for a data plane: its own configuration, else the one for any data plane. */
export function gatewayFor(dataPlaneId: string): GatewayConfig | undefined {
  const all = readGateways();
  return all[dataPlaneId] ?? all[ANY_DATA_PLANE];
}

export function saveGateway(dataPlaneId: string, config: GatewayConfig): void {
  const url = config.url.replace(/\/+$/, '');
  const urls = load(localStorage, URLS);
  const tokens = load(sessionStorage, TOKENS);
  urls[dataPlaneId] = config.remember ? { url, token: config.token } : { url };
  if (config.remember) delete tokens[dataPlaneId];
  else tokens[dataPlaneId] = { url, token: config.token };
  localStorage.setItem(URLS, JSON.stringify(urls));
  sessionStorage.setItem(TOKENS, JSON.stringify(tokens));
  changed();
}

export function removeGateway(dataPlaneId: string): void {
  const urls = load(localStorage, URLS);
  const tokens = load(sessionStorage, TOKENS);
  delete urls[dataPlaneId];
  delete tokens[dataPlaneId];
  localStorage.setItem(URLS, JSON.stringify(urls));
  sessionStorage.setItem(TOKENS, JSON.stringify(tokens));
  changed();
}

/** Re-renders when a gateway is configured, here or in another tab. */
export function useGatewaysVersion(): number {
  return useSyncExternalStore(
    (listener) => {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    () => version,
  );
}
