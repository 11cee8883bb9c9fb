import { createHash, randomBytes } from 'node:crypto';
import { Inject, Injectable } from '@nestjs/common';
import { CairnError, ErrorCodes, isId, isName, newId } from '@cairn/common';
import { DataPlaneRepository } from '../db/data-plane.repository.js';

// A revoked token keeps working on this replica for at most this long.
const AUTH_CACHE_MS = 5_000;
const AUTH_CACHE_MAX = 10_000;

export interface CreatedDataPlane {
  readonly id: string;
  readonly name: string;
  /** The bearer token, shown once; only its SHA-256 is stored. */
  readonly token: string;
  readonly created: boolean;
}

export function sha256(value: string): string {
  return createHash('sha256').update(value).digest('hex');
}

/** Registered data planes and their credentials. */
@Injectable()
export class DataPlaneService {
  private readonly cache = new Map<string, { id: string; until: number }>();

  constructor(@Inject(DataPlaneRepository) private readonly dataPlanes: DataPlaneRepository) {}

  /** Creates a data plane, or with the ID of an existing one gives it a new token (and name). */
  async create(input: { name: string; id?: string; token?: string }): Promise<CreatedDataPlane> {
    if (!isName(input.name)) {
      throw new CairnError(
        ErrorCodes.INVALID_ARGUMENT,
        '--name must start with a letter, contain only letters, digits, _ . - and be at most 100 characters',
      );
    }
    const id = input.id ?? newId();
    if (!isId(id)) throw new CairnError(ErrorCodes.INVALID_ARGUMENT, '--id must be a lowercase UUID');
    const token = input.token ?? `cdp_${randomBytes(32).toString('base64url')}`;
    if (token.length < 8 || token.length > 512 || !/^[\x21-\x7e]+$/.test(token)) {
      throw new CairnError(ErrorCodes.INVALID_ARGUMENT, '--token must be 8 to 512 printable characters without spaces');
    }
    try {
      const { record, created } = await this.dataPlanes.upsert(id, input.name, sha256(token));
      this.cache.clear();
      return { id: record.id, name: record.name, token, created };
    } catch (error) {
      if ((error as { code?: unknown }).code === '23505') {
        throw new CairnError(ErrorCodes.CONFLICT, 'that token is already used by another data plane: choose another token or omit --token');
      }
      throw error;
    }
  }

  /** The data plane a bearer token belongs to; throws UNAUTHENTICATED for an unknown or revoked one. */
  async authenticate(token: string | undefined): Promise<string> {
    if (token === undefined || token === '') {
      throw new CairnError(
        ErrorCodes.UNAUTHENTICATED,
        "missing credential: send the metadata 'authorization: Bearer <data-plane token>' (create a token with `control-plane data-planes create`)",
      );
    }
    const digest = sha256(token);
    const now = Date.now();
    const cached = this.cache.get(digest);
    if (cached && cached.until > now) return cached.id;
    const record = await this.dataPlanes.findActiveByTokenSha256(digest);
    if (!record) {
      this.cache.delete(digest);
      throw new CairnError(
        ErrorCodes.UNAUTHENTICATED,
        'unknown or revoked data-plane token: use the token `control-plane data-planes create` printed for this data plane (create a new one if it was lost or revoked)',
      );
    }
    if (this.cache.size >= AUTH_CACHE_MAX) this.cache.clear();
    this.cache.set(digest, { id: record.id, until: now + AUTH_CACHE_MS });
    return record.id;
  }
}
