/**
 * Seam: what the forwarder relies on in Piscina beyond its documented options. Pinned to
 * PINNED_PISCINA_VERSION; test/unit/seam-piscina.test.ts checks the installed version and each
 * behaviour below with real worker threads.
 *
 * - A task's queue options (`Piscina.queueOptionsSymbol`) reach the custom balancer as
 *   `task[queueOptionsSymbol]`; that is how a batch names its lane.
 * - The balancer is handed worker handles whose `id` is the thread's `threadId`. When a task
 *   is submitted it sees only the workers that are ready; when a worker becomes available it
 *   sees every worker of the pool, ready or still starting. Returning null queues the task
 *   until the next worker becomes available.
 * - With minThreads = maxThreads and an infinite idle timeout the pool creates every worker at
 *   construction (and counts them ready at once) and replaces only a thread that died.
 */
import { Piscina } from 'piscina';
import type { PiscinaTask } from 'piscina';

export const PINNED_PISCINA_VERSION = '5.3.2';

const LANE = Piscina.queueOptionsSymbol;

interface LaneOptions {
  readonly lane: number;
}

type Balancer = NonNullable<NonNullable<ConstructorParameters<typeof Piscina>[0]>['loadBalancer']>;
type WorkerHandle = Parameters<Balancer>[1][number];

/** `task`, tagged with the lane whose thread must run it. */
export function laneTask<T extends object>(task: T, lane: number): T {
  return Object.assign(task, { [LANE]: { lane } satisfies LaneOptions });
}

/**
 * Binds lane i to the i-th thread by ascending thread id, decided once the balancer has seen
 * every thread of the pool, and keeps each binding for as long as its thread lives. Binding by
 * position in whatever list the balancer is handed would move lanes while a replacement thread
 * starts (the list then holds only the ready ones): one lane's batches on two producers, and
 * per-topic order lost for every lane behind it.
 */
export class LaneBalancer {
  private threads: number[] | undefined;
  /** Times the binding had to be made again because a bound thread no longer exists. */
  rebinds = 0;

  constructor(private readonly lanes: number) {}

  /** The thread id lane `lane` is bound to, once bound. */
  threadOf(lane: number): number | undefined {
    return this.threads?.[lane];
  }

  readonly balance: Balancer = (task: PiscinaTask, workers: WorkerHandle[]) => {
    const opts = task[LANE as keyof PiscinaTask] as unknown as LaneOptions | undefined;
    if (opts === undefined) return workers[0] ?? null;
    if (this.threads === undefined) {
      if (workers.length < this.lanes) return null;
      this.bind(workers);
    }
    const id = this.threads![opts.lane];
    const w = workers.find((x) => x.id === id);
    if (w !== undefined) return w;
    if (workers.length >= this.lanes) {
      // Every thread is listed and the bound one is not: it died and was replaced.
      this.rebind(workers);
      return workers.find((x) => x.id === this.threads![opts.lane]) ?? null;
    }
    return null;
  };

  private bind(workers: readonly WorkerHandle[]): void {
    this.threads = workers.map((x) => x.id).sort((a, b) => a - b);
  }

  /** Gives the lanes of threads that are gone the new threads; every other lane stays. */
  private rebind(workers: readonly WorkerHandle[]): void {
    const threads = this.threads!;
    const live = new Set(workers.map((x) => x.id));
    const unbound = workers
      .map((x) => x.id)
      .filter((id) => !threads.includes(id))
      .sort((a, b) => a - b);
    for (let lane = 0; lane < threads.length; lane++) {
      if (live.has(threads[lane]!)) continue;
      const next = unbound.shift();
      if (next === undefined) return;
      threads[lane] = next;
      this.rebinds++;
    }
  }
}
