// A small seeded generator (SplitMix32), so that a seed replays the same fault schedule and the same
// workload choices. Each consumer takes its own stream, so the workload's draws do not shift the faults'.

export class Random {
  #state: number;

  constructor(seed: number, stream: number) {
    this.#state = (Math.imul(seed >>> 0, 0x9e3779b9) ^ Math.imul(stream + 1, 0x85ebca6b)) >>> 0;
  }

  /** A float in [0, 1). */
  next(): number {
    this.#state = (this.#state + 0x9e3779b9) >>> 0;
    let z = this.#state;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
    return ((z ^ (z >>> 16)) >>> 0) / 4294967296;
  }

  /** An integer in [min, max]. */
  int(min: number, max: number): number {
    return min + Math.floor(this.next() * (max - min + 1));
  }

  pick<T>(items: readonly T[]): T {
    if (items.length === 0) throw new Error('pick from an empty list');
    return items[Math.floor(this.next() * items.length)]!;
  }

  /** One of `weights`' keys, each as likely as its weight. */
  weighted<K extends string>(weights: Readonly<Record<K, number>>): K {
    const entries = Object.entries(weights) as Array<[K, number]>;
    let r = this.next() * entries.reduce((sum, [, w]) => sum + w, 0);
    for (const [key, weight] of entries) {
      if ((r -= weight) < 0) return key;
    }
    return entries[entries.length - 1]![0];
  }

  /** An exponentially distributed wait with this mean (a Poisson process of events). */
  exponential(mean: number): number {
    return -Math.log(1 - this.next()) * mean;
  }
}
