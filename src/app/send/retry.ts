// Use case `retry`: deliveries in retryable states become due now with a new retry window (same
// Message-IDs), and the bulletin is resumed to send them. The retryable states are named here once.
import { RETRYABLE_STATES, type DeliveryState } from '../../domain/delivery.js';
import { BulletinError } from '../../domain/errors.js';
import { DatabaseOutage } from '../../send/database-outage.js';
import { reopenBulletin } from '../../store/bulletins.js';
import { requeueDeliveries } from '../../store/deliveries.js';
import type { App } from '../context.js';
import { requireBulletin } from './bulletins.js';
import { resumeSend } from './resume.js';
import type { RunOptions, SendSummary } from './run.js';

/** Refuses (USAGE) states `retry` may not put back, in one sentence naming the ones it may. */
export function checkRetryable(states: readonly DeliveryState[]): void {
  const refused = states.filter((state) => !RETRYABLE_STATES.includes(state));
  if (refused.length > 0) {
    throw new BulletinError('USAGE', `Only ${RETRYABLE_STATES.join(', ')} deliveries can be retried, not ${refused.join(', ')}.`);
  }
}

/**
 * `bulletin retry <id> --state failed,uncertain`: those deliveries become due now with a new retry
 * window (same Message-IDs), and the bulletin is resumed to send them (members who left are skipped).
 */
export async function retryDeliveries(
  app: App,
  bulletinId: number,
  states: readonly DeliveryState[],
  options: RunOptions,
): Promise<{ requeued: number; summary: SendSummary }> {
  checkRetryable(states);
  const outage = options.outage ?? new DatabaseOutage();
  await outage.ride(() => requireBulletin(app, bulletinId, ' (see `bulletin status`)'));
  const now = (options.clock ?? app.clock).now();
  // Repeating it after a lost answer puts back the same deliveries (then deferred, due now) again.
  const requeued = await outage.ride(() =>
    app.db.transaction(async (tx) => {
      const count = await requeueDeliveries(tx, bulletinId, states, now);
      if (count > 0) await reopenBulletin(tx, bulletinId);
      return count;
    }),
  );
  return { requeued, summary: await resumeSend(app, bulletinId, { ...options, outage }) };
}
