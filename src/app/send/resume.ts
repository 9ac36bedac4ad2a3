// Use case `resume`: picks up an unfinished bulletin (or its deferred deliveries) where it stopped.
import { BulletinError } from '../../domain/errors.js';
import { DatabaseOutage } from '../../send/database-outage.js';
import type { App } from '../context.js';
import { listOf, requireBulletin } from './bulletins.js';
import { dispatchBulletin } from './dispatch.js';
import type { RunOptions, SendSummary } from './run.js';

/** `bulletin resume <id>`: picks up an unfinished bulletin (or its deferred deliveries) where it stopped. */
export async function resumeSend(app: App, bulletinId: number, options: RunOptions): Promise<SendSummary> {
  const outage = options.outage ?? new DatabaseOutage();
  const bulletin = await outage.ride(() => requireBulletin(app, bulletinId, ' (see `bulletin status`)'));
  if (bulletin.state === 'cancelled') {
    throw new BulletinError(
      'BAD_INPUT',
      `Bulletin ${bulletinId} was cancelled${bulletin.cancelledBy ? ` by ${bulletin.cancelledBy}` : ''}: nothing more of it is sent (\`bulletin retry ${bulletinId} --state cancelled\` sends to its cancelled deliveries after all).`,
    );
  }
  const list = await outage.ride(() => listOf(app, bulletin));
  return dispatchBulletin(app, bulletin, list, { ...options, outage });
}
