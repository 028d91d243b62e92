import type { CatalogEntry } from '../catalog/types.js';

/**
 * Sources (catalog entries) that failed recently, and until when they are avoided. Keyed by entry id: a
 * failure is a fact about one URL of one remote, not about the remote as a whole (a 404 of one file says
 * nothing about the others).
 */
export class SourceCooldowns {
  private readonly until = new Map<number, number>();

  constructor(
    private readonly durationMs: number,
    private readonly now: () => number = Date.now,
  ) {}

  /** Starts (or restarts) the cooldown of `entry`; returns when it ends, in ms since the epoch. */
  coolDown(entry: Pick<CatalogEntry, 'id'>): number {
    const until = this.now() + this.durationMs;
    this.until.set(entry.id, until);
    return until;
  }

  /** Whether `entry` is cooling down now. */
  isCooling(entry: Pick<CatalogEntry, 'id'>): boolean {
    const until = this.until.get(entry.id);
    if (until === undefined) return false;
    if (until > this.now()) return true;
    this.until.delete(entry.id);
    return false;
  }

  /** Ends the cooldown of one entry, or of all. */
  clear(entry?: Pick<CatalogEntry, 'id'>): void {
    if (entry) this.until.delete(entry.id);
    else this.until.clear();
  }

  /**
   * The sources to try, in the given order: those not cooling down; or, when every one is cooling down, all
   * of them. A request is then never refused without an upstream having been asked: a cooldown is a guess
   * that a source is still broken, and when there is no better guess, asking again is cheaper than a 502.
   * A cooled-down source is not tried after the others failed in the same fill: they were preferred because
   * they had not failed lately, and retrying one that just failed would only make the client wait longer.
   */
  select<T extends { entry: Pick<CatalogEntry, 'id'> }>(sources: readonly T[]): T[] {
    const fresh = sources.filter((s) => !this.isCooling(s.entry));
    return fresh.length > 0 ? fresh : [...sources];
  }
}
