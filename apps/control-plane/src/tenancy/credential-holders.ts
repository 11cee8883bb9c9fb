import { Injectable } from '@nestjs/common';

/** Why a worker stream that authenticated with a credential since rotated or revoked is ended. */
export const STALE_STREAM_CREDENTIAL =
  'the data-plane credential was rotated or revoked: this stream used the old one; configure the current credential and reconnect';

/** A stream or long poll that authenticated with a data-plane credential and is still open. */
export interface CredentialHolder {
  readonly dataPlaneId: string;
  /** SHA-256 of the credential it authenticated with (never the credential). */
  readonly tokenSha256: string;
  /** Ends it: the credential it used was rotated or revoked. */
  end(message: string): void;
}

/**
 * The worker streams and gateway long polls on this replica, by data plane, with the credential
 * each authenticated with, so a rotation or revocation ends exactly those still using the old
 * secret (a worker already on the new credential keeps its stream).
 */
@Injectable()
export class CredentialHolders {
  private readonly byDataPlane = new Map<string, Set<CredentialHolder>>();

  /** Registers a holder; the returned function removes it (call it when the stream or call ends). */
  add(holder: CredentialHolder): () => void {
    let set = this.byDataPlane.get(holder.dataPlaneId);
    if (!set) {
      set = new Set();
      this.byDataPlane.set(holder.dataPlaneId, set);
    }
    set.add(holder);
    return () => {
      const current = this.byDataPlane.get(holder.dataPlaneId);
      current?.delete(holder);
      if (current?.size === 0) this.byDataPlane.delete(holder.dataPlaneId);
    };
  }

  forDataPlane(dataPlaneId: string): CredentialHolder[] {
    return [...(this.byDataPlane.get(dataPlaneId) ?? [])];
  }

  dataPlaneIds(): string[] {
    return [...this.byDataPlane.keys()];
  }
}
