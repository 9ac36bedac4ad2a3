// Use case `send --dry-run`: renders every active member's message, reports the ones that cannot
// render, sends nothing.
import { DatabaseOutage } from '../../send/database-outage.js';
import { forEachMemberBatch } from '../../store/memberships.js';
import type { App } from '../context.js';
import type { SendPlan } from './prepare.js';

export interface DryRunReport {
  readonly list: string;
  readonly subject: string;
  readonly rendered: number;
  readonly errors: { email: string; error: string }[];
}

/** Renders every active member's message and sends nothing (after an outage, it starts again). */
export async function dryRunSend(app: App, plan: SendPlan, outage = new DatabaseOutage()): Promise<DryRunReport> {
  return outage.ride(async () => {
    let rendered = 0;
    const errors: { email: string; error: string }[] = [];
    await forEachMemberBatch(app.db, { listId: plan.list.id, status: 'active', batchSize: 1000 }, async (members) => {
      for (const member of members) {
        try {
          plan.compiled.render(member);
          rendered++;
        } catch (error) {
          errors.push({ email: member.email, error: (error as Error).message });
        }
      }
    });
    return { list: plan.list.slug, subject: plan.compiled.subject, rendered, errors };
  });
}
