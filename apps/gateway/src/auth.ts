import { createHash, timingSafeEqual } from 'node:crypto';
import { CairnError, ErrorCodes } from '@cairn/common';

const sha256 = (s: string): Buffer => createHash('sha256').update(s, 'utf8').digest();

/**
 * The bearer tokens clients present. Tokens are compared as SHA-256 digests with
 * `timingSafeEqual`, against every configured token, so neither a token's content nor its length
 * nor which token matched shows in the timing.
 */
export class TokenSet {
  readonly #digests: readonly Buffer[];

  constructor(tokens: readonly string[]) {
    this.#digests = tokens.map(sha256);
  }

  /** Checks an `Authorization` header; throws CAIRN-1104 unless it carries an accepted token. */
  check(header: string | undefined): void {
    const match = header === undefined ? null : /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(header);
    if (!match) {
      throw new CairnError(
        ErrorCodes.UNAUTHENTICATED,
        'missing bearer token: send the header "Authorization: Bearer <token>" with one of the tokens in the gateway\'s CAIRN_GATEWAY_TOKENS',
      );
    }
    const candidate = sha256(match[1]!);
    let ok = false;
    for (const digest of this.#digests) ok = timingSafeEqual(digest, candidate) || ok;
    if (!ok) {
      throw new CairnError(
        ErrorCodes.UNAUTHENTICATED,
        "the bearer token is not accepted by this gateway: use one of the tokens in the gateway's CAIRN_GATEWAY_TOKENS",
      );
    }
  }
}
