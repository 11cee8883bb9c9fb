import { createHash, timingSafeEqual } from 'node:crypto';
import { CREDENTIAL_PREFIX_LENGTH, CairnError, CredentialThrottle, ErrorCodes, credentialThrottled, weakTokenReason } from '@cairn/common';

/**
 * What a gateway token may do. `read`: runs, results, steps, journals, transcripts, streams, stored
 * payloads. `start`: start runs. `signal`: send signals and answer approvals. `admin`: cancel runs,
 * store and delete payloads, and everything the others allow.
 */
export const SCOPES = ['read', 'start', 'signal', 'admin'] as const;
export type Scope = (typeof SCOPES)[number];

/** A token without `:scopes` may do everything (as before scopes existed); give scopes to narrow it. */
export const DEFAULT_SCOPES: readonly Scope[] = SCOPES;

/** One configured token and what it may do. */
export interface GatewayToken {
  readonly token: string;
  readonly scopes: readonly Scope[];
}

const sha256 = (s: string): Buffer => createHash('sha256').update(s, 'utf8').digest();
// A gRPC metadata value and an HTTP bearer token: visible ASCII, no spaces; ',' separates entries
// and ':' the scopes.
const TOKEN_PATTERN = /^[\x21-\x2b\x2d-\x39\x3b-\x7e]+$/;

/**
 * Parses one entry of CAIRN_GATEWAY_TOKENS, `token[:scope+scope…]`, e.g. `cgt_…:read+start`.
 * Answers the problem instead when the entry is malformed, names an unknown scope or holds a weak
 * token; the problem never quotes the token.
 */
export function parseGatewayToken(entry: string): GatewayToken | { readonly problem: string } {
  const colon = entry.lastIndexOf(':');
  const token = colon < 0 ? entry : entry.slice(0, colon);
  const names = colon < 0 ? null : entry.slice(colon + 1).split('+');
  if (!TOKEN_PATTERN.test(token)) return { problem: 'tokens must be printable ASCII without spaces, commas or colons' };
  let scopes: readonly Scope[] = DEFAULT_SCOPES;
  if (names !== null) {
    const unknown = names.filter((n) => !(SCOPES as readonly string[]).includes(n));
    if (unknown.length > 0 || names.length === 0) {
      return {
        problem: `unknown scope ${JSON.stringify(unknown[0] ?? '').slice(0, 40)}: scopes are ${SCOPES.join(', ')}, joined with + (token:read+start)`,
      };
    }
    scopes = names.includes('admin') ? SCOPES : SCOPES.filter((s) => names.includes(s));
  }
  const weak = weakTokenReason(token);
  if (weak) return { problem: `is too weak (${ErrorCodes.WEAK_CREDENTIAL}): the token ${weak}` };
  return { token, scopes };
}

/**
 * The bearer tokens clients present, with their scopes. Tokens are compared as SHA-256 digests
 * with `timingSafeEqual`, against every configured token, so neither a token's content nor its
 * length nor which token matched shows in the timing. Failed attempts are throttled per client
 * address (a token that authenticated recently is never throttled; see CredentialThrottle).
 */
export class TokenSet {
  readonly #entries: ReadonlyArray<{ readonly digest: Buffer; readonly mask: number }>;
  readonly #throttle: CredentialThrottle;

  constructor(tokens: readonly GatewayToken[], throttle: CredentialThrottle = new CredentialThrottle()) {
    this.#entries = tokens.map((t) => ({ digest: sha256(t.token), mask: maskOf(t.scopes) }));
    this.#throttle = throttle;
  }

  /**
   * Checks an `Authorization` header from `source` (the client's address) and answers the token's
   * scopes; throws CAIRN-1104 unless it carries an accepted token, CAIRN-1142 when the address
   * failed too often.
   */
  authenticate(header: string | undefined, source = 'unknown'): readonly Scope[] {
    const match = header === undefined ? null : /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(header);
    if (!match) {
      throw new CairnError(
        ErrorCodes.UNAUTHENTICATED,
        'missing bearer token: send the header "Authorization: Bearer <token>" with one of the tokens in the gateway\'s CAIRN_GATEWAY_TOKENS',
      );
    }
    const presented = match[1]!;
    const candidate = sha256(presented);
    const attempt = { source, prefix: presented.slice(0, CREDENTIAL_PREFIX_LENGTH), digest: candidate.toString('hex') };
    const wait = this.#throttle.retryAfterMs(attempt);
    if (wait > 0) throw credentialThrottled(wait, 'gateway tokens');
    let mask = 0;
    for (const entry of this.#entries) mask |= timingSafeEqual(entry.digest, candidate) ? entry.mask : 0;
    if (mask === 0) {
      this.#throttle.failed(attempt);
      throw new CairnError(
        ErrorCodes.UNAUTHENTICATED,
        "the bearer token is not accepted by this gateway: use one of the tokens in the gateway's CAIRN_GATEWAY_TOKENS",
      );
    }
    this.#throttle.succeeded(attempt);
    return SCOPES.filter((s) => (mask & maskOf([s])) !== 0);
  }

  /** {@link authenticate}, without the scopes (any accepted token). */
  check(header: string | undefined, source?: string): void {
    this.authenticate(header, source);
  }
}

/** Refuses a token without the scope a route needs: CAIRN-1144 (403), naming both. */
export function requireScope(scopes: readonly Scope[], needed: Scope, route: string): void {
  if (scopes.includes(needed)) return;
  throw new CairnError(
    ErrorCodes.SCOPE_MISSING,
    `this gateway token has the scope${scopes.length === 1 ? '' : 's'} ${scopes.join(', ')}; ${route} needs the scope ${needed}: ` +
      `use a token with it (in CAIRN_GATEWAY_TOKENS, token:${needed} or token:${[...scopes, needed].join('+')})`,
    { details: { scope: needed } },
  );
}

function maskOf(scopes: readonly Scope[]): number {
  let mask = 0;
  for (const s of scopes) mask |= 1 << SCOPES.indexOf(s);
  return mask;
}
