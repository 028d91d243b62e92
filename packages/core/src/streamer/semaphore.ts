/** Gives back a slot taken from a `Semaphore`; calling it more than once has no effect. */
export type Release = () => void;

/**
 * A counting semaphore with a FIFO queue. The limit may change while slots are held (a remote was edited):
 * a lower limit lets running holders finish and admits nobody new until the count drops below it.
 */
export class Semaphore {
  private held = 0;
  private readonly waiting: { grant: (release: Release) => void; reject: (err: unknown) => void }[] = [];

  private max: number;

  constructor(limit: number) {
    this.max = Math.max(1, limit);
  }

  get limit(): number {
    return this.max;
  }

  set limit(value: number) {
    this.max = Math.max(1, value);
    this.admit();
  }

  /** Slots in use. */
  get inUse(): number {
    return this.held;
  }

  /** Waiting callers. */
  get queued(): number {
    return this.waiting.length;
  }

  /** Resolves with a release function once a slot is free; rejects with the signal's reason on abort. */
  acquire(signal?: AbortSignal): Promise<Release> {
    if (signal?.aborted) return Promise.reject(signal.reason);
    return new Promise<Release>((resolve, reject) => {
      const onAbort = () => {
        const index = this.waiting.indexOf(waiter);
        if (index >= 0) this.waiting.splice(index, 1);
        reject(signal?.reason);
      };
      const waiter = {
        grant: (release: Release) => {
          signal?.removeEventListener('abort', onAbort);
          resolve(release);
        },
        reject,
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      this.waiting.push(waiter);
      this.admit();
    });
  }

  private admit(): void {
    while (this.held < this.max && this.waiting.length > 0) {
      const waiter = this.waiting.shift();
      if (!waiter) break;
      this.held++;
      let released = false;
      waiter.grant(() => {
        if (released) return;
        released = true;
        this.held--;
        this.admit();
      });
    }
  }
}
