// The dispatcher's DispatchStore (src/send/dispatch-store.ts) on the database: each operation is one
// statement of store/deliveries.ts.
import type { DispatchStore } from '../../send/dispatch-store.js';
import { isConnectionError, type Database } from '../../store/database.js';
import {
  claimDue,
  claimQueued,
  countByState,
  expireAbandonedClaims,
  msUntilNextLeaseEnd,
  nextDueAt,
  recordOutcomes,
  releaseClaims,
  renewLeases,
  reopenFailedDeliveries,
  selectOwnClaims,
} from '../../store/deliveries.js';

export function dispatchStoreOf(db: Database): DispatchStore {
  return {
    claimDue: (options) => claimDue(db, options),
    claimQueued: (options) => claimQueued(db, options),
    selectOwnClaims: (bulletinId, owner) => selectOwnClaims(db, bulletinId, owner),
    recordOutcomes: (owner, outcomes) => recordOutcomes(db, owner, outcomes),
    releaseClaims: (owner, ids) => releaseClaims(db, owner, ids),
    reopenFailedDeliveries: (ids) => reopenFailedDeliveries(db, ids),
    renewLeases: (owner, leaseMs) => renewLeases(db, owner, leaseMs),
    expireLapsedClaims: (bulletinId, exceptOwner) => expireAbandonedClaims(db, bulletinId, [], exceptOwner),
    nextDueAt: (bulletinId, includeUncertain) => nextDueAt(db, bulletinId, includeUncertain),
    msUntilNextLeaseEnd: (bulletinId, exceptOwner) => msUntilNextLeaseEnd(db, bulletinId, exceptOwner),
    countUncertain: async (bulletinId) => (await countByState(db, bulletinId)).uncertain,
    isConnectionError,
  };
}
