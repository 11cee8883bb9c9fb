// What the worker lets cross to the control plane beyond the contract's patterns: model and
// provider names only from the worker's configured list. A model name is chosen at run time (a
// model ID string, a custom provider's name) and so could be anything that fits the pattern,
// an e-mail address included; a pair the operator did not list crosses as a fixed provider name
// and a keyed digest, and the real names stay in the data plane (transcripts, logs, traces).
import { CairnError, ErrorCodes, NAME_MAX_LENGTH, NAME_PATTERN } from '@cairn/common';
import type { Hasher } from '@cairn/payload-store';

/** The provider name an unlisted model crosses under. */
export const UNLISTED_PROVIDER = 'unlisted';
/** The model name of an unlisted model: this prefix and 16 hex digits of a keyed digest. */
export const UNLISTED_MODEL_PREFIX = 'unlisted.';

const MODEL_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_.:/@+-]*$/;
const MODEL_MAX_LENGTH = 100;

/** One `provider/model` entry of the list, e.g. `mistral.chat/mistral-large-latest`. */
export interface ListedModel {
  readonly provider: string;
  readonly model: string;
}

/**
 * Parses `CAIRN_WORKER_MODELS`: comma-separated `provider/model` pairs as the AI SDK names them
 * (`mistral.chat/mistral-large-latest`, `openai.chat/gpt-4o-mini`); the provider ends at the first
 * `/`, a model ID may hold more. Throws naming the entry (by position) that does not fit.
 */
export function parseModelList(value: string | undefined, variable = 'CAIRN_WORKER_MODELS'): readonly ListedModel[] {
  if (value === undefined || value.trim() === '') return [];
  const entries = value.split(',').map((s) => s.trim());
  return entries.map((entry, i) => {
    const slash = entry.indexOf('/');
    const provider = slash < 0 ? '' : entry.slice(0, slash);
    const model = slash < 0 ? '' : entry.slice(slash + 1);
    const ok =
      provider.length <= NAME_MAX_LENGTH && NAME_PATTERN.test(provider) && model.length <= MODEL_MAX_LENGTH && MODEL_PATTERN.test(model);
    if (!ok) {
      throw new CairnError(
        ErrorCodes.INVALID_CONFIG,
        `${variable}: entry ${i + 1} of ${entries.length} is not provider/model, e.g. mistral.chat/mistral-large-latest ` +
          `(the provider as the AI SDK names it: letters, digits, '_', '.', '-'; then '/' and the model ID)`,
      );
    }
    return { provider, model };
  });
}

/** Whether `value` parses as a model list. */
export function isModelList(value: string | undefined): boolean {
  try {
    parseModelList(value);
    return true;
  } catch {
    return false;
  }
}

/** Decides the provider and model names a model call's step report carries. */
export class ModelNames {
  readonly #listed: ReadonlySet<string>;
  readonly #hasher: Hasher;

  constructor(listed: readonly ListedModel[], hasher: Hasher) {
    this.#listed = new Set(listed.map((m) => `${m.provider}/${m.model}`));
    this.#hasher = hasher;
  }

  /**
   * The names that cross for a call to `model` of `provider`: the same when the pair is listed
   * (or both are empty: not a model call); otherwise `unlisted` and `unlisted.<16 hex>`, a digest
   * keyed with the data plane's HMAC key (so usage per model stays countable without the name).
   */
  crossing(provider: string, model: string): { provider: string; model: string } {
    if ((provider === '' && model === '') || this.#listed.has(`${provider}/${model}`)) return { provider, model };
    const digest = this.#hasher.digest(`cairn.model-name\u0000${provider}\u0000${model}`);
    return { provider: UNLISTED_PROVIDER, model: `${UNLISTED_MODEL_PREFIX}${digest.slice(0, 16)}` };
  }
}
