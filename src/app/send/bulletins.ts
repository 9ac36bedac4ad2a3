// Lookups the send use cases share: a bulletin by id (or a one-sentence NOT_FOUND), its list, and
// how many of its deliveries are still open.
import { OPEN_STATES } from '../../domain/delivery.js';
import { BulletinError } from '../../domain/errors.js';
import type { MailingList } from '../../domain/list.js';
import { findBulletin, type StoredBulletin } from '../../store/bulletins.js';
import type { StateCounts } from '../../store/deliveries.js';
import { findListById } from '../../store/lists.js';
import type { App } from '../context.js';

/** The bulletin, or the sentence saying there is none (`hint`: where to look, e.g. `bulletin status`). */
export async function requireBulletin(app: App, bulletinId: number, hint = ''): Promise<StoredBulletin> {
  const bulletin = await findBulletin(app.db, bulletinId);
  if (!bulletin) throw new BulletinError('NOT_FOUND', `There is no bulletin ${bulletinId}${hint}.`);
  return bulletin;
}

export async function listOf(app: App, bulletin: StoredBulletin): Promise<MailingList> {
  const list = await findListById(app.db, bulletin.listId);
  if (!list) throw new BulletinError('NOT_FOUND', `The list of bulletin ${bulletin.id} no longer exists.`);
  return list;
}

export function openDeliveries(counts: StateCounts): number {
  return OPEN_STATES.reduce((sum, state) => sum + counts[state], 0);
}
