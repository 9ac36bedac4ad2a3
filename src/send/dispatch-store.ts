// What the dispatcher needs of the database, declared here and implemented in src/app/ with
// store/deliveries.ts: claiming, renewing and giving back claims, writing outcomes, and the few
// questions the loop asks when nothing is claimable. Each call is one statement that checks state.
import type { ClaimedDelivery, ClaimOptions, DeliveryOutcome } from '../store/deliveries.js';

export type { ClaimedDelivery, DeliveryOutcome };

export interface DispatchStore {
  /** Retries that are due (and uncertain ones, when re-sent), claimed for `owner`. */
  claimDue(options: ClaimOptions & { includeUncertain: boolean }): Promise<ClaimedDelivery[]>;
  /** Queued deliveries after the low-water mark `afterId`, claimed for `owner`. */
  claimQueued(options: ClaimOptions & { afterId: number }): Promise<ClaimedDelivery[]>;
  /** What `owner` holds in `sending` (after a claim whose answer was lost). */
  selectOwnClaims(bulletinId: number, owner: string): Promise<ClaimedDelivery[]>;
  recordOutcomes(owner: string, outcomes: readonly DeliveryOutcome[]): Promise<unknown>;
  /** Gives claims back as they were (queued, or deferred and due), never attempted. */
  releaseClaims(owner: string, ids: readonly number[]): Promise<unknown>;
  /** Failed deliveries of a held send go back to deferred, due now. */
  reopenFailedDeliveries(ids: readonly number[]): Promise<unknown>;
  /** Extends `owner`'s leases; the ids it still holds. */
  renewLeases(owner: string, leaseMs: number): Promise<number[]>;
  /** Claims of other workers whose leases lapsed become uncertain. */
  expireLapsedClaims(bulletinId: number, exceptOwner: string): Promise<unknown>;
  /** When the next deferred (or uncertain, when re-sent) delivery is due; null: none. */
  nextDueAt(bulletinId: number, includeUncertain: boolean): Promise<Date | null>;
  /** Milliseconds until the first lease of another worker's claims runs out (null: none held). */
  msUntilNextLeaseEnd(bulletinId: number, exceptOwner: string): Promise<number | null>;
  countUncertain(bulletinId: number): Promise<number>;
  /** The database could not be reached (the statement may or may not have run). */
  isConnectionError(error: unknown): boolean;
}
