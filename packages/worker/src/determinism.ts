import { createHmac } from 'node:crypto';

/**
 * `ctx.random()` and `ctx.uuid()`: values derived with HMAC-SHA256 from the run's stored 32-byte
 * seed and a per-kind call counter, so every replay yields the same sequence without journaling.
 */
export class DeterministicSource {
  readonly #seed: Buffer;
  readonly #prefix: string;
  #randomCalls = 0;
  #uuidCalls = 0;

  constructor(seed: Buffer, prefix = '') {
    this.#seed = seed;
    this.#prefix = prefix;
  }

  /**
   * A source of its own for `scope` (a `ctx.parallel` branch), whose values do not depend on how
   * calls in other branches interleave with it.
   */
  scoped(scope: string): DeterministicSource {
    return new DeterministicSource(this.#seed, `${this.#prefix}${scope}/`);
  }

  #bytes(label: string): Buffer {
    return createHmac('sha256', this.#seed).update(`${this.#prefix}${label}`, 'utf8').digest();
  }

  /** A number in [0, 1) with 53 random bits. */
  random(): number {
    const b = this.#bytes(`random:${this.#randomCalls++}`);
    // 21 high bits + 32 low bits = 53 bits, the precision of a double.
    const high = b.readUInt32BE(0) >>> 11;
    const low = b.readUInt32BE(4);
    return (high * 2 ** 32 + low) / 2 ** 53;
  }

  /** A UUID in version-4 layout. */
  uuid(): string {
    return this.#uuidOf(`uuid:${this.#uuidCalls++}`);
  }

  /** A UUID in version-4 layout for a durable call's identity (a child run's ID); no counter. */
  uuidFor(identity: string): string {
    return this.#uuidOf(`child:${identity}`);
  }

  #uuidOf(label: string): string {
    const b = this.#bytes(label).subarray(0, 16);
    b[6] = (b[6]! & 0x0f) | 0x40;
    b[8] = (b[8]! & 0x3f) | 0x80;
    const h = b.toString('hex');
    return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20, 32)}`;
  }
}
