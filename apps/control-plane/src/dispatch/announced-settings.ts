import { FLOW_CONTROL_LIMITS, TIMEOUT_LIMITS, checkRetryPolicy } from '@cairn/common';
import type { WorkflowSettings } from '@cairn/proto';
import type { AnnouncedSettings } from '../domain.js';
import { CronSchedule } from '../schedules/cron.js';

/**
 * Reads the settings a Hello announced for a workflow version (their strings were already checked
 * against their residency classes) into the registry's form, with the registry's bounds. Returns
 * the problems instead, each naming its proto field under `path`; they never echo a value.
 */
export function readAnnouncedSettings(
  settings: WorkflowSettings | undefined,
  path: string,
): { settings: AnnouncedSettings | undefined; problems: string[] } {
  if (settings === undefined) return { settings: undefined, problems: [] };
  const problems: string[] = [];
  let retry: AnnouncedSettings['retry'] = null;
  if (settings.retry) {
    const r = settings.retry;
    const checked = checkRetryPolicy({
      maximumAttempts: r.maximumAttempts,
      initialInterval: Number(r.initialIntervalMs),
      backoffCoefficient: r.backoffCoefficient,
      maximumInterval: Number(r.maximumIntervalMs),
    });
    if ('numbers' in checked) {
      const n = checked.numbers;
      retry = {
        maximumAttempts: n.maximumAttempts,
        initialInterval: n.initialIntervalMs,
        backoffCoefficient: n.backoffCoefficient,
        maximumInterval: n.maximumIntervalMs,
      };
    } else {
      for (const p of checked.problems) problems.push(`${path}.retry: ${p.message}`);
    }
  }
  const timeout = (value: bigint, min: number, field: string): number | null => {
    if (value === 0n) return null;
    if (value < BigInt(min) || value > BigInt(TIMEOUT_LIMITS.maxMs)) {
      problems.push(`${path}.${field} must be from ${min} ms to 366 days`);
      return null;
    }
    return Number(value);
  };
  const runTimeoutMs = timeout(settings.runTimeoutMs, TIMEOUT_LIMITS.minRunMs, 'run_timeout_ms');
  const stepTimeoutMs = timeout(settings.stepTimeoutMs, TIMEOUT_LIMITS.minStepMs, 'step_timeout_ms');
  if (settings.schedules.length > 20) problems.push(`${path}.schedules: at most 20 schedules are declared with a version`);
  settings.schedules.forEach((s, i) => {
    try {
      CronSchedule.parse(s.cron, s.timezone);
    } catch (err) {
      problems.push(`${path}.schedules[${i}]: ${err instanceof Error ? err.message.replace(/^\[CAIRN-\d{4}\] /, '') : 'invalid'}`);
    }
  });
  let flowControl: AnnouncedSettings['flowControl'] = null;
  const flow = settings.flowControl;
  if (flow) {
    const c = flow.concurrency;
    const r = flow.rateLimit;
    if (c && (c.limit < 1 || c.limit > FLOW_CONTROL_LIMITS.concurrency)) {
      problems.push(`${path}.flow_control.concurrency.limit must be from 1 to ${FLOW_CONTROL_LIMITS.concurrency}`);
    }
    if (r && (r.limit < 1 || r.limit > FLOW_CONTROL_LIMITS.rateLimit)) {
      problems.push(`${path}.flow_control.rate_limit.limit must be from 1 to ${FLOW_CONTROL_LIMITS.rateLimit}`);
    }
    if (r && (r.periodMs < BigInt(FLOW_CONTROL_LIMITS.minPeriodMs) || r.periodMs > BigInt(FLOW_CONTROL_LIMITS.maxPeriodMs))) {
      problems.push(
        `${path}.flow_control.rate_limit.period_ms must be from ${FLOW_CONTROL_LIMITS.minPeriodMs} to ${FLOW_CONTROL_LIMITS.maxPeriodMs}`,
      );
    }
    flowControl = {
      concurrency: c ? { limit: c.limit, perKey: c.perKey } : null,
      rateLimit: r ? { limit: r.limit, periodMs: Number(r.periodMs), perKey: r.perKey } : null,
    };
  }
  if (problems.length > 0) return { settings: undefined, problems };
  return {
    settings: {
      inputSchemaDigest: settings.inputSchemaDigest === '' ? null : settings.inputSchemaDigest,
      outputSchemaDigest: settings.outputSchemaDigest === '' ? null : settings.outputSchemaDigest,
      retry,
      runTimeoutMs,
      stepTimeoutMs,
      schedules: settings.schedules.map((s) => ({ cron: s.cron, timezone: s.timezone })),
      flowControl,
    },
    problems: [],
  };
}
