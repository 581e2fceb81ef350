/**
 * @file Unique names for new values and nodes. Names are generated only when a caller does not give one, and
 * never collide with any name already in the model (all graphs, since subgraphs see outer names).
 */
import type { Model } from '../ir/model.js';

export class NameAuthority {
  private readonly taken = new Set<string>();
  private readonly counters = new Map<string, number>();

  constructor(model?: Model) {
    if (!model) return;
    for (const g of model.allGraphs()) {
      for (const v of g.inputs) this.taken.add(v.name);
      for (const v of g.initializers.keys()) this.taken.add(v);
      for (const n of g.nodes) {
        if (n.name) this.taken.add(n.name);
        for (const o of n.outputs) if (o) this.taken.add(o.name);
      }
    }
  }

  /** `base` if free, else `base_1`, `base_2`, …; the result is reserved. */
  fresh(base: string): string {
    let name = base;
    let i = this.counters.get(base) ?? 0;
    while (this.taken.has(name)) name = `${base}_${++i}`;
    this.counters.set(base, i);
    this.taken.add(name);
    return name;
  }

  /** Marks a name as used. */
  reserve(name: string): void {
    this.taken.add(name);
  }
}
