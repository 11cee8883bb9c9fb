// Compile-time tests of @cairn/client's inference: `pnpm build` (tsc) fails when a type here is
// wrong, or when a line marked @ts-expect-error compiles. Nothing here runs.
import { workflowRef, type CairnClient, type InputOf, type OutputOf, type SignalLike } from '@cairn/client';
import type { clientOrder } from './workflows.js';
import { clientOrder as clientOrderDefinition, doomed } from './workflows.js';

// The usual exact type-equality test: T exists only to defer the comparison.
// eslint-disable-next-line @typescript-eslint/no-unnecessary-type-parameters
type Equal<A, B> = (<T>() => T extends A ? 1 : 2) extends <T>() => T extends B ? 1 : 2 ? true : false;
const expectType = <T extends true>(value: T): T => value;

interface OrderOutput {
  orderId: string;
  amount: number;
  approved: boolean;
  by: string | null;
  limit: number | null;
  note: string;
}

export async function inference(client: CairnClient): Promise<void> {
  // Input and output come from the definition.
  expectType<Equal<InputOf<typeof clientOrder>, { orderId: string; amount: number }>>(true);
  expectType<Equal<OutputOf<typeof clientOrder>, OrderOutput>>(true);
  const run = await client.start(clientOrderDefinition, { orderId: 'o-1', amount: 25 });
  const _output: OrderOutput = await run.result();
  expectType<Equal<Awaited<ReturnType<typeof run.result>>, OrderOutput>>(true);

  // @ts-expect-error: orderId is a string
  await client.start(clientOrderDefinition, { orderId: 1, amount: 25 });
  // @ts-expect-error: amount is missing
  await client.start(clientOrderDefinition, { orderId: 'o-1' });
  // @ts-expect-error: doomed takes { secret: string }
  await client.start(doomed, { orderId: 'o-1', amount: 25 });

  // A reference by name, typed from `import type` only (what a browser app does).
  const ref = workflowRef<typeof clientOrder>('client-order', '1');
  const _byRef = await client.start(ref, { orderId: 'o-2', amount: 3 });
  expectType<Equal<Awaited<ReturnType<typeof _byRef.result>>, OrderOutput>>(true);
  // @ts-expect-error: the reference carries the input type
  await client.start(ref, { order: 'o-2' });

  // A handle for a run started elsewhere, typed by its workflow.
  const _later = client.run<typeof clientOrder>('3f1c2a9e-7b4d-4e0a-9c1b-2d5e6f7a8b9c');
  expectType<Equal<Awaited<ReturnType<typeof _later.result>>, OrderOutput>>(true);
  // Untyped references give unknown, never any.
  expectType<Equal<Awaited<ReturnType<ReturnType<typeof client.run>['result']>>, unknown>>(true);

  // Signals: a definition's body type is checked; a bare name takes any body.
  const note: SignalLike<{ text: string }> = { name: 'note' };
  await run.signal(note, { text: 'thanks' });
  // @ts-expect-error: the note's text is a string
  await run.signal(note, { text: 42 });
  const withTypes = { name: 'note' } as { readonly name: 'note'; readonly '~types'?: { readonly body: { text: string } } };
  // @ts-expect-error: a ~types phantom is read too
  await run.signal(withTypes, { text: false });
  const legacy = { name: 'note' } as { readonly name: 'note'; readonly __body?: { text: string } };
  // @ts-expect-error: a __body phantom is read too
  await run.signal(legacy, { text: null });
  await run.signal('anything', { free: true });
}
