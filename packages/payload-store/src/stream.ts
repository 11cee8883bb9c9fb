/**
 * Live output of a run, published inside the data plane while it is produced (text deltas of a
 * model call as they stream). Each event is stored (sealed) with a per-run sequence number as it is
 * published, so a subscriber that reconnects reads what it missed; the journal and transcripts stay
 * the record of the calls.
 */
export type StreamEvent =
  | {
      readonly type: 'delta';
      /** The journal position of the model call. */
      readonly position: number;
      /** The call's static name. */
      readonly name: string;
      /** The attempt the text belongs to; text of an earlier, failed attempt is superseded. */
      readonly attempt: number;
      readonly text: string;
    }
  | {
      readonly type: 'model-done';
      readonly position: number;
      readonly name: string;
      /** The attempt whose result was journaled. */
      readonly attempt: number;
    };

/** A stream event with its place in the run's stream: 1, 2, 3, … in publishing order (the SSE event id). */
export type SequencedStreamEvent = StreamEvent & {
  /** Increasing per run, without gaps, in the order the events were committed. */
  readonly seq: number;
};

/**
 * Postgres refuses a NOTIFY payload of 8000 bytes or more. A sealed payload is
 * `runId:firstSeq:keyId:base64(iv||tag||ciphertext)`, so the JSON inside is kept well below: at
 * most (8000 - 36 - 20 - 64 - 3) × 3/4 - 28 ≈ 5880 bytes. 5000 leaves room.
 */
export const MAX_STREAM_PLAINTEXT_BYTES = 5000;

const size = (value: unknown): number => Buffer.byteLength(JSON.stringify(value), 'utf8');

/**
 * Splits the text of a delta too large for one payload of `maxBytes` into several deltas. Splits
 * fall between code points, never inside one. Each piece is one stored event with its own
 * sequence number.
 */
export function splitStreamEvents(events: readonly StreamEvent[], maxBytes = MAX_STREAM_PLAINTEXT_BYTES): StreamEvent[] {
  const pieces: StreamEvent[] = [];
  for (const event of events) {
    if (event.type !== 'delta' || size([event]) <= maxBytes) {
      pieces.push(event);
      continue;
    }
    const budget = maxBytes - size([{ ...event, text: '' }]);
    let text = '';
    let used = 0;
    for (const ch of event.text) {
      // The character's cost as it will appear inside a JSON string (escapes included).
      const cost = size(ch) - 2;
      if (used + cost > budget && text !== '') {
        pieces.push({ ...event, text });
        text = '';
        used = 0;
      }
      text += ch;
      used += cost;
    }
    if (text !== '') pieces.push({ ...event, text });
  }
  return pieces;
}

/**
 * Packs events into as few payloads (JSON arrays) as fit under `maxBytes` each, splitting the text
 * of a delta that does not fit on its own (see {@link splitStreamEvents}).
 */
export function packStreamEvents(events: readonly StreamEvent[], maxBytes = MAX_STREAM_PLAINTEXT_BYTES): string[] {
  return packPieces(splitStreamEvents(events, maxBytes), maxBytes).map((batch) => JSON.stringify(batch));
}

/** Groups events that each fit under `maxBytes` into consecutive batches whose JSON arrays fit too. */
export function packPieces<E extends StreamEvent>(pieces: readonly E[], maxBytes = MAX_STREAM_PLAINTEXT_BYTES): E[][] {
  const batches: E[][] = [];
  let batch: E[] = [];
  let batchBytes = 2;
  for (const piece of pieces) {
    const cost = size(piece) + 1;
    if (batch.length > 0 && batchBytes + cost > maxBytes) {
      batches.push(batch);
      batch = [];
      batchBytes = 2;
    }
    batch.push(piece);
    batchBytes += cost;
  }
  if (batch.length > 0) batches.push(batch);
  return batches;
}

/** Reads a payload back; drops anything that is not a well-formed event. */
export function unpackStreamEvents(payload: string): StreamEvent[] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(payload);
  } catch {
    return [];
  }
  if (!Array.isArray(parsed)) return [];
  return parsed.filter(isStreamEvent);
}

/** A well-formed event (read back from a NOTIFY payload or a stored row). */
export function isStreamEvent(e: unknown): e is StreamEvent {
  if (typeof e !== 'object' || e === null) return false;
  const v = e as Record<string, unknown>;
  const common = typeof v['position'] === 'number' && typeof v['name'] === 'string' && typeof v['attempt'] === 'number';
  return common && (v['type'] === 'model-done' || (v['type'] === 'delta' && typeof v['text'] === 'string'));
}
