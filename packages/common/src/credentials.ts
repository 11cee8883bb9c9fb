// Bearer credentials shared by both planes: a strength check for tokens an operator chooses, and a
// throttle of failed credential attempts. Pure (no I/O, no crypto): callers pass the digests they
// already compute.
import { CairnError, ErrorCodes } from './errors.js';

/** The shortest bearer token an operator may configure. */
export const TOKEN_MIN_LENGTH = 32;
/** The least strength, estimated from the token's length and the kinds of characters in it. */
export const TOKEN_MIN_BITS = 128;
const TOKEN_MIN_DISTINCT = 8;
// A run of more characters than this that repeat or count up or down (aaaa…, abcd…, 9876…).
const TOKEN_MAX_RUN = 6;

/**
 * Why a bearer token an operator configured is too weak, or null when it is strong enough: at
 * least 32 characters, about 128 bits judged by its length and character kinds, at least 8
 * different characters, and not a repetition or a counting sequence. The answer never quotes the
 * token. A random token passes: `openssl rand -base64 32`, or `cgt_` + `openssl rand -hex 32`.
 */
export function weakTokenReason(token: string): string | null {
  const advice = 'use at least 32 random characters, e.g. the output of `openssl rand -base64 32`';
  if (token.length < TOKEN_MIN_LENGTH) return `is ${token.length} characters long; ${advice}`;
  let pool = 0;
  if (/[a-z]/.test(token)) pool += 26;
  if (/[A-Z]/.test(token)) pool += 26;
  if (/[0-9]/.test(token)) pool += 10;
  if (/[^A-Za-z0-9]/.test(token)) pool += 33;
  const bits = Math.floor(token.length * Math.log2(Math.max(pool, 2)));
  if (bits < TOKEN_MIN_BITS) return `has about ${bits} bits of strength (at least ${TOKEN_MIN_BITS} needed): ${advice}`;
  if (new Set(token).size < TOKEN_MIN_DISTINCT) return `uses fewer than ${TOKEN_MIN_DISTINCT} different characters; ${advice}`;
  if (/^([\s\S]+?)\1+$/.test(token)) return `is one short string repeated; ${advice}`;
  let run = 1;
  for (let i = 1; i < token.length; i++) {
    const step = token.charCodeAt(i) - token.charCodeAt(i - 1);
    const previous = i >= 2 ? token.charCodeAt(i - 1) - token.charCodeAt(i - 2) : Number.NaN;
    run = Math.abs(step) <= 1 && (run === 1 || step === previous) ? run + 1 : 1;
    if (run > TOKEN_MAX_RUN) return `contains a run of repeated or consecutive characters; ${advice}`;
  }
  return null;
}

/** How many failures a bucket takes before it throttles, and how fast it refills. */
export interface ThrottleLimits {
  /** Failures allowed at once before attempts are throttled. */
  readonly burst: number;
  /** One more failure is allowed every this many milliseconds, up to `burst`. */
  readonly refillMs: number;
}

export interface CredentialThrottleOptions {
  /** Failures of any credential from one source address. Default: 20 at once, then one every 3 s. */
  readonly perSource?: ThrottleLimits;
  /** Failures of one credential prefix from one source address. Default: 5 at once, then one every 12 s. */
  readonly perPrefix?: ThrottleLimits;
  /** How long a credential that authenticated stays exempt from throttling. Default: one hour. */
  readonly trustedForMs?: number;
  /** Entries kept per table before the oldest are forgotten (memory stays bounded). Default: 50,000. */
  readonly maxEntries?: number;
  readonly now?: () => number;
}

/** One credential attempt: where it came from and which credential (as the caller's digest of it). */
export interface CredentialAttempt {
  /** The client's address (see {@link sourceOf}). */
  readonly source: string;
  /** The credential's first characters (its kind and a few more): a stale credential in a retry loop is throttled on its own. */
  readonly prefix: string;
  /** A digest of the whole credential (SHA-256 hex): never the credential itself. */
  readonly digest: string;
}

/** The characters of a credential that identify it in a throttle: enough to tell keys apart, far too few to use one. */
export const CREDENTIAL_PREFIX_LENGTH = 12;

/**
 * The throttle key of a client address: an IPv4 address as it is (an IPv4-mapped IPv6 address as
 * IPv4), an IPv6 address by its /64 network, since one host commonly holds a whole /64.
 */
export function sourceOf(address: string | undefined): string {
  if (address === undefined || address === '') return 'unknown';
  const bare = address.replace(/^\[|\]$/g, '').replace(/%.*$/, '');
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(bare);
  if (mapped) return mapped[1]!;
  if (!bare.includes(':')) return bare;
  const [head, tail] = bare.split('::') as [string, string | undefined];
  const left = head === '' ? [] : head.split(':');
  const right = tail === undefined || tail === '' ? [] : tail.split(':');
  const groups = tail === undefined ? left : [...left, ...Array<string>(Math.max(0, 8 - left.length - right.length)).fill('0'), ...right];
  return `${groups
    .slice(0, 4)
    .map((g) => (g === '' ? '0' : g.toLowerCase().replace(/^0+(?=.)/, '')))
    .join(':')}::/64`;
}

interface Bucket {
  tokens: number;
  at: number;
}

const DEFAULT_SOURCE: ThrottleLimits = { burst: 20, refillMs: 3_000 };
const DEFAULT_PREFIX: ThrottleLimits = { burst: 5, refillMs: 12_000 };

/**
 * Throttles failed credential attempts, per source address and per (source, credential prefix),
 * with token buckets that only failures drain.
 *
 * Why this shape: a credential that works is never throttled, whoever else fails. Each
 * credential that authenticated is remembered (by digest) for an hour and is let through even
 * from a throttled address — presenting it proves nothing new to a guesser, who must already hold
 * it. So an attacker sharing an address (a NAT, a proxy) with legitimate clients cannot lock them
 * out; at worst a client whose credential this process has not seen succeed in the last hour
 * waits out the throttle. Nothing is keyed by the credential alone, so guessing at someone's key
 * prefix does not lock its holder out either. The per-prefix bucket is tighter than the
 * per-source one: a stale credential retried in a loop is throttled before it spends the budget
 * of its whole address, and a guesser who varies the credential meets the per-source bucket.
 * Requests without a credential are not attempts and are not counted.
 *
 * State is in memory, per process, bounded by `maxEntries` per table.
 */
export class CredentialThrottle {
  readonly #perSource: ThrottleLimits;
  readonly #perPrefix: ThrottleLimits;
  readonly #trustedForMs: number;
  readonly #maxEntries: number;
  readonly #now: () => number;
  readonly #sources = new Map<string, Bucket>();
  readonly #prefixes = new Map<string, Bucket>();
  readonly #trusted = new Map<string, number>();

  constructor(options: CredentialThrottleOptions = {}) {
    this.#perSource = options.perSource ?? DEFAULT_SOURCE;
    this.#perPrefix = options.perPrefix ?? DEFAULT_PREFIX;
    this.#trustedForMs = options.trustedForMs ?? 3_600_000;
    this.#maxEntries = options.maxEntries ?? 50_000;
    this.#now = options.now ?? Date.now;
  }

  /** Milliseconds until this attempt may be checked; 0 when it may be checked now. */
  retryAfterMs(attempt: CredentialAttempt): number {
    const now = this.#now();
    const trustedUntil = this.#trusted.get(attempt.digest);
    if (trustedUntil !== undefined) {
      if (trustedUntil > now) return 0;
      this.#trusted.delete(attempt.digest);
    }
    return Math.max(
      this.#wait(this.#sources.get(attempt.source), this.#perSource, now),
      this.#wait(this.#prefixes.get(`${attempt.source} ${attempt.prefix}`), this.#perPrefix, now),
    );
  }

  /** The credential was checked and refused (unknown, revoked or expired). */
  failed(attempt: CredentialAttempt): void {
    const now = this.#now();
    this.#drain(this.#sources, attempt.source, this.#perSource, now);
    this.#drain(this.#prefixes, `${attempt.source} ${attempt.prefix}`, this.#perPrefix, now);
  }

  /** The credential authenticated: it is let through for a while even from a throttled address. */
  succeeded(attempt: CredentialAttempt): void {
    this.#trusted.delete(attempt.digest);
    this.#trusted.set(attempt.digest, this.#now() + this.#trustedForMs);
    if (this.#trusted.size > this.#maxEntries) this.#trusted.delete(this.#trusted.keys().next().value!);
  }

  /** The credential may no longer be used (revoked, rotated): it loses its exemption. */
  forget(digest: string): void {
    this.#trusted.delete(digest);
  }

  #level(bucket: Bucket | undefined, limits: ThrottleLimits, now: number): number {
    if (!bucket) return limits.burst;
    return Math.min(limits.burst, bucket.tokens + (now - bucket.at) / limits.refillMs);
  }

  #wait(bucket: Bucket | undefined, limits: ThrottleLimits, now: number): number {
    const level = this.#level(bucket, limits, now);
    return level >= 1 ? 0 : Math.ceil((1 - level) * limits.refillMs);
  }

  #drain(table: Map<string, Bucket>, key: string, limits: ThrottleLimits, now: number): void {
    const level = this.#level(table.get(key), limits, now);
    table.delete(key);
    table.set(key, { tokens: Math.max(0, level - 1), at: now });
    if (table.size <= this.#maxEntries) return;
    // Forget buckets that refilled, then the oldest, so memory stays bounded under a flood.
    for (const [k, b] of table) if (this.#level(b, limits, now) >= limits.burst) table.delete(k);
    while (table.size > this.#maxEntries) table.delete(table.keys().next().value!);
  }
}

/**
 * The error of a throttled attempt (CAIRN-1142): HTTP 429 with `Retry-After`, gRPC
 * RESOURCE_EXHAUSTED with a `retry-after` trailer. `details.retryAfterSeconds` carries the wait.
 */
export function credentialThrottled(retryAfterMs: number, what: string): CairnError {
  const seconds = Math.max(1, Math.ceil(retryAfterMs / 1000));
  return new CairnError(
    ErrorCodes.CREDENTIAL_THROTTLED,
    `too many failed attempts with unknown ${what} from this address: retry after ${seconds} s with a valid credential. ` +
      'A credential that authenticated recently is not throttled.',
    { details: { retryAfterSeconds: seconds } },
  );
}

/** The wait a throttled error asks for, in whole seconds (for `Retry-After`), or undefined for any other error. */
export function retryAfterSeconds(error: CairnError): number | undefined {
  const value = error.details['retryAfterSeconds'];
  return typeof value === 'number' && Number.isFinite(value) ? value : undefined;
}
