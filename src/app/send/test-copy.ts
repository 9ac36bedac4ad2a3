// Use case `send --test-to`: one copy to one address, with that member's values (or the sample
// values), recorded nowhere.
import { SAMPLE_RECIPIENT } from '../../render/index.js';
import { DatabaseOutage } from '../../send/database-outage.js';
import type { Transport } from '../../send/transport.js';
import { findMember } from '../../store/memberships.js';
import type { App } from '../context.js';
import { checkAddress } from '../subscribers.js';
import type { SendPlan } from './prepare.js';

/** Sends one copy to `address` (the list's sample values if they are not a member); records nothing. */
export async function sendTestCopy(app: App, plan: SendPlan, address: string, transport: Transport, outage = new DatabaseOutage()) {
  const email = checkAddress(address);
  const member = await outage.ride(() => findMember(app.db, plan.list.id, email));
  const outcome = await transport.send(plan.compiled.render(member ? { ...member, subscription: member.resubscriptions } : { ...SAMPLE_RECIPIENT, email }));
  return { to: email, outcome };
}
