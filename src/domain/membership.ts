// A subscriber's membership of one list: the statuses it can have and where a change came from.
// Defined once here; migration 0001 mirrors MEMBERSHIP_STATUSES as the Postgres enum membership_status
// ('removed', by a sync, is added by migration 0015).

export const MEMBERSHIP_STATUSES = ['active', 'unsubscribed', 'bounced', 'removed'] as const;
export type MembershipStatus = (typeof MEMBERSHIP_STATUSES)[number];

/** Where a subscription or a status change came from; shown in `subscribers ls` and `list show`. */
export const MEMBERSHIP_SOURCES = ['command line', 'import', 'one-click', 'page', 'mailto', 'complaint', 'bounce', 'demo', 'sync'] as const;
export type MembershipSource = (typeof MEMBERSHIP_SOURCES)[number];
