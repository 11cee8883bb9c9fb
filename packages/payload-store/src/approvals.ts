import { CairnError, ErrorCodes, NAME_MAX_LENGTH, assertName } from '@cairn/common';
import type { Hasher, RunDigests } from './crypto.js';

/** Every approval's signal name starts with this. */
export const APPROVAL_SIGNAL_PREFIX = 'approval.';
/** Hex digits of the key's HMAC kept in an approval's signal name (128 bits). */
export const APPROVAL_DIGEST_LENGTH = 32;
/** The longest approval name without a key, and with one. */
export const APPROVAL_NAME_MAX_LENGTH = NAME_MAX_LENGTH - APPROVAL_SIGNAL_PREFIX.length;
export const APPROVAL_KEYED_NAME_MAX_LENGTH = APPROVAL_NAME_MAX_LENGTH - 1 - APPROVAL_DIGEST_LENGTH;

/**
 * The signal an approval waits for: `approval.<name>`, or `approval.<name>.<digest>` when the
 * approval has a key, where `<digest>` is the first 32 hex digits of the key's HMAC
 * (`Hasher.digest(String(key))`). The worker (`ctx.approval`) and the gateway
 * (`POST /v1/runs/:id/approvals/:name`) both derive it here, so they agree, and only the static
 * name and a digest cross to the control plane.
 */
export function approvalSignalName(name: string, keyDigest?: string): string {
  assertName(name, 'approval name');
  if (keyDigest !== undefined && !/^[0-9a-f]{64}$/.test(keyDigest)) {
    throw new CairnError(ErrorCodes.INTERNAL, 'An approval key digest must be an HMAC-SHA256 hex digest.');
  }
  const max = keyDigest === undefined ? APPROVAL_NAME_MAX_LENGTH : APPROVAL_KEYED_NAME_MAX_LENGTH;
  if (name.length > max) {
    throw new CairnError(
      ErrorCodes.INVALID_NAME,
      `Invalid approval name "${name}": it crosses to the control plane as the signal name ` +
        `"${APPROVAL_SIGNAL_PREFIX}<name>${keyDigest === undefined ? '' : '.<key digest>'}", so it can have at most ${max} characters` +
        `${keyDigest === undefined ? ` (${APPROVAL_KEYED_NAME_MAX_LENGTH} with a key)` : ' with a key'}.`,
    );
  }
  const suffix = keyDigest === undefined ? '' : `.${keyDigest.slice(0, APPROVAL_DIGEST_LENGTH)}`;
  return `${APPROVAL_SIGNAL_PREFIX}${name}${suffix}`;
}

/**
 * The digest under which a signal name crosses to the control plane for one run: HMAC-SHA256 with
 * the data plane's key over a purpose label, the run ID and the name. The gateway (SignalRun) and
 * the worker (RunSuspended) both compute it here, so a notice whose name stays in the data plane
 * still wakes the run; with the run ID in it, one name gives unrelated digests on two runs.
 */
export function signalNameDigest(hasher: Hasher, runId: string, name: string): string {
  return hasher.digest(`cairn.signal-name\u0000${runId}\u0000${name}`);
}

/**
 * The ID of a signal sent with an idempotency key: the same (run, signal name, key) always gives
 * the same ID, so a repeated request stores and counts nothing new. Made of the HMAC-SHA256 of the
 * three under the run's own idempotency digest key (`Hasher.forRun`, per workflow, kept across an
 * HMAC key rotation for the run's life), domain-separated from start keys by a purpose label, and
 * written as a UUID (version 8, RFC 9562). Only this opaque ID crosses to the control plane; the key
 * stays in the data plane.
 */
export function keyedSignalId(digests: RunDigests, runId: string, name: string, key: string): string {
  const h = digests.idempotency(`cairn.signal-id\u0000${runId}\u0000${name}\u0000${key}`);
  const variant = ((parseInt(h[16]!, 16) & 0x3) | 0x8).toString(16);
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-8${h.slice(13, 16)}-${variant}${h.slice(17, 20)}-${h.slice(20, 32)}`;
}

/** How names cross: `standard` (names written in code in clear) or `strict` (as keyed digests). */
export type ResidencyMode = 'standard' | 'strict';

/** A name that crossed in strict residency mode: `h.` and 40 hex digits of a keyed digest. */
export const STRICT_NAME_PATTERN = /^h\.[0-9a-f]{40}$/;

/**
 * The name under which a step or signal name crosses in strict residency mode (`CAIRN_RESIDENCY=
 * strict`): `h.` and the first 40 hex digits (160 bits) of an HMAC-SHA256 with the data plane's key
 * over a purpose label, the kind of name and the name. It fits the contract's NAME pattern, so the
 * control plane stores it like a name; the same name always gives the same digest in one data
 * plane, so timelines stay comparable. The data plane resolves it back from the run's journal,
 * which records each call's name, and a workflow name from the schema catalogue or the run's row
 * (`dp_runs.workflow_name`), which keep the name in clear.
 */
export function strictNameDigest(hasher: Hasher, kind: 'step' | 'signal' | 'workflow', name: string): string {
  return `h.${hasher.digest(`cairn.strict-name\u0000${kind}\u0000${name}`).slice(0, 40)}`;
}

/**
 * The name under which a workflow crosses to the control plane: the name itself in `standard`
 * mode, its keyed digest (`strictNameDigest(hasher, 'workflow', name)`) in `strict` mode. The
 * control plane registers, dispatches and schedules by it like by any name; the worker maps it back
 * to its workflow code and the gateway to the name it was given. A name that already is a digest
 * is left as it is, so translating twice changes nothing.
 */
export function crossingWorkflowName(hasher: Hasher, mode: ResidencyMode, name: string): string {
  return mode === 'strict' && !STRICT_NAME_PATTERN.test(name) ? strictNameDigest(hasher, 'workflow', name) : name;
}
