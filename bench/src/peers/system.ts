// What the peer benchmark needs of each system it measures.

export type SystemName = 'cairn' | 'dbos' | 'restate';

export const SYSTEM_NAMES: readonly SystemName[] = ['cairn', 'dbos', 'restate'];

/** One system, started fresh for a block of measurements. */
export interface BenchSystem {
  readonly name: SystemName;
  /**
   * Starts one run of `steps` trivial steps (each returns a number and is journaled durably before
   * the next begins) and awaits its result, as a client of the system would.
   */
  run(steps: number): Promise<void>;
  /** The Postgres database the system journals to, for the single-commit floor (none for Restate). */
  readonly floorUrl: string | undefined;
  /** Stops everything the system started and removes its data. */
  stop(): Promise<void>;
}
