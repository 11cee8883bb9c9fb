// Sizes that cross from the data plane to the control plane are coarse. An exact byte count can
// reveal a small value: `true` is 4 bytes and `false` 5, an approval answer with `"approved":true`
// is one byte shorter than one with `false`. So every size the data plane reports (run input and
// output, step and signal-wait results, child inputs) is rounded up to a size class first; the
// exact size stays in the data plane's journal, where the gateway and the CLI read it.

/** The smallest non-zero size class, in bytes. */
export const SIZE_CLASS_MIN = 64;

/**
 * The size class of `bytes`: 0 stays 0 (nothing recorded), 1–64 bytes become 64, and anything
 * larger is rounded up to the next power of two (65–128 → 128, 129–256 → 256, …). A size class
 * tells the control plane the order of magnitude of a payload (within a factor of two, and nothing
 * below 64 bytes), never its exact length. The same function is applied again by the control plane
 * on receipt, so a value that is already a size class is returned unchanged.
 */
export function coarseSize(bytes: number): number {
  if (!Number.isFinite(bytes) || bytes <= 0) return 0;
  if (bytes <= SIZE_CLASS_MIN) return SIZE_CLASS_MIN;
  if (bytes > Number.MAX_SAFE_INTEGER) return Number.MAX_SAFE_INTEGER;
  let size = SIZE_CLASS_MIN;
  while (size < bytes) size *= 2;
  return Math.min(size, Number.MAX_SAFE_INTEGER);
}

/** {@link coarseSize} for a uint64 field. */
export function coarseSizeBig(bytes: bigint | number): bigint {
  return BigInt(coarseSize(Number(bytes)));
}
