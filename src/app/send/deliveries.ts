// Use case `deliveries`: a page of a send's deliveries (address, state, attempts, last reply),
// filtered by state or by the in-doubt mark.
import type { DeliveryState } from '../../domain/delivery.js';
import { selectDeliveries, type DeliveryRow } from '../../store/deliveries.js';
import type { App } from '../context.js';
import { requireBulletin } from './bulletins.js';

export async function listDeliveries(
  app: App,
  bulletinId: number,
  query: { states: DeliveryState[] | null; inDoubt?: boolean; afterId: number; limit: number },
): Promise<DeliveryRow[]> {
  await requireBulletin(app, bulletinId);
  return selectDeliveries(app.db, { bulletinId, ...query });
}
