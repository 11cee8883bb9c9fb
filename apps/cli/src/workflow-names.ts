// Workflow names across a strict-residency data plane. With CAIRN_RESIDENCY=strict the control
// plane holds each workflow under a keyed digest (`h.` and 40 hex digits) that only the data plane
// can compute: a command that sends the control plane a workflow name asks the profile's gateway
// what the name crosses under, and a command that shows the control plane's names asks it to
// resolve the digests. Without a gateway the digests are shown as they are, with a note.
import type { Context } from './context.js';

/** A workflow name a strict-mode data plane sent to the control plane as a keyed digest. */
export const STRICT_WORKFLOW_NAME = /^h\.[0-9a-f]{40}$/;

interface WorkflowNamesView {
  residency: 'standard' | 'strict';
  workflows: Array<{ name: string | null; crossesAs: string }>;
}

/** Commands that were told once already (`runs watch` asks on every poll). */
const noted = new WeakSet<Context>();

function hasGateway(ctx: Context): boolean {
  return Boolean(ctx.settings.gatewayUrl && ctx.settings.gatewayToken);
}

/**
 * The name the control plane holds for `name`: asked of the profile's gateway (the keyed digest in
 * strict residency mode, the name itself otherwise). Without a gateway, or when it cannot answer,
 * the name as given (a note says that a strict-mode control plane knows it only by its digest).
 */
export async function crossingWorkflowName(ctx: Context, name: string): Promise<string> {
  if (!hasGateway(ctx) || STRICT_WORKFLOW_NAME.test(name)) return name;
  try {
    const view = await ctx.gateway().post<WorkflowNamesView>('/v1/workflow-names', { names: [name] });
    return view.workflows[0]?.crossesAs ?? name;
  } catch (err) {
    ctx.out.note(
      `sent workflow name ${name} as it is: the gateway could not say what it crosses under (${String(err)}); ` +
        'a data plane in strict residency mode knows it only by its keyed digest',
    );
    return name;
  }
}

/**
 * The workflow names for the control plane's names among `names` that are strict-mode digests,
 * resolved by the profile's gateway. Without a gateway (or when it cannot answer) nothing is
 * resolved, and a note says how to resolve them.
 */
export async function resolveWorkflowNames(ctx: Context, names: Iterable<string>): Promise<Map<string, string>> {
  const digests = [...new Set([...names].filter((n) => STRICT_WORKFLOW_NAME.test(n)))];
  const resolved = new Map<string, string>();
  if (digests.length === 0) return resolved;
  if (!hasGateway(ctx)) {
    if (noted.has(ctx)) return resolved;
    noted.add(ctx);
    ctx.out.note(
      'workflow names are keyed digests (the data plane runs in strict residency mode): add its gateway to the profile ' +
        '(cairn login --gateway URL, or CAIRN_GATEWAY_URL and CAIRN_GATEWAY_TOKEN) to see them resolved',
    );
    return resolved;
  }
  try {
    for (let i = 0; i < digests.length; i += 100) {
      const view = await ctx.gateway().post<WorkflowNamesView>('/v1/workflow-names', { digests: digests.slice(i, i + 100) });
      for (const w of view.workflows) if (w.name !== null) resolved.set(w.crossesAs, w.name);
    }
  } catch (err) {
    ctx.out.note(`workflow names are keyed digests (strict residency mode) and the gateway could not resolve them: ${String(err)}`);
  }
  return resolved;
}
