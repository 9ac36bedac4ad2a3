// The one rule for a run that is no news: a process (a worker) coming back to a send where it
// recorded nothing and that ended as its last such run did (still paused, still waiting for its
// retries) is reported and logged once, not every round. The worker's report and the JSON log keep one each.

/** The sends' last runs that recorded nothing, and how they ended. */
export class QuietRuns {
  private readonly lastQuietEnd = new Map<number, string>();

  /** Whether the last run on this send recorded nothing (a new one may be a repeat of it). */
  lastWasQuiet(bulletinId: number): boolean {
    return this.lastQuietEnd.has(bulletinId);
  }

  /** Takes a run's end and what it recorded; true when it recorded nothing and ended as the last quiet run did. */
  ended(bulletinId: number, end: string, counts: Readonly<Record<string, number>>): boolean {
    const quiet = Object.values(counts).every((count) => count === 0);
    const repeat = quiet && this.lastQuietEnd.get(bulletinId) === end;
    if (quiet) this.lastQuietEnd.set(bulletinId, end);
    else this.lastQuietEnd.delete(bulletinId);
    return repeat;
  }
}
