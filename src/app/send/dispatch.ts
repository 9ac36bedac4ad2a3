// The step every sending use case ends in: reclaims what dead senders left in flight, wires the
// dispatcher to the store, the shared pace and the renderer, runs it, and sums up what happened.
import { hostname } from 'node:os';
import { parseClaimOwner } from '../../domain/claim-owner.js';
import type { MailingList } from '../../domain/list.js';
import type { CompiledBulletin } from '../../render/index.js';
import { DatabaseOutage } from '../../send/database-outage.js';
import { Dispatcher } from '../../send/dispatcher.js';
import { SharedPacer } from '../../send/shared-pacer.js';
import { parseRate } from '../../send/throttle.js';
import { finishBulletinIfDone, type StoredBulletin } from '../../store/bulletins.js';
import { isProcessAlive } from '../../store/database.js';
import { countByState, expireAbandonedClaims, nextDueAt, selectSendingOwners } from '../../store/deliveries.js';
import { reserveSlots } from '../../store/send-pacing.js';
import { recordSmtpBounces } from '../bounces.js';
import type { App } from '../context.js';
import { openDeliveries } from './bulletins.js';
import { dispatchStoreOf } from './dispatch-store.js';
import { sendControlOf } from './send-control.js';
import { compileStored } from './prepare.js';
import type { InDoubt, RunOptions, SendSummary } from './run.js';

export async function dispatchBulletin(
  app: App,
  bulletin: StoredBulletin,
  list: MailingList,
  options: RunOptions,
  ready?: CompiledBulletin,
): Promise<SendSummary> {
  const outage = options.outage ?? new DatabaseOutage();
  const ride = <T>(step: () => Promise<T>) => outage.ride(step);
  const leftInFlight = await ride(() => reclaimAbandoned(app, bulletin.id));
  const compiled = ready ?? (await ride(() => compileStored(app, bulletin, list)));
  const pacer =
    options.pacer ??
    new SharedPacer((count, intervalMs) => reserveSlots(app.db, bulletin.id, count, intervalMs), {
      rate: options.rate ?? parseRate(app.config.rate),
    });
  const dispatcher = new Dispatcher(
    {
      store: dispatchStoreOf(app.db),
      transport: options.transport,
      pacer,
      render: (recipient) => compiled.render(recipient),
      recordHardBounces: (bounces) =>
        recordSmtpBounces(
          app,
          bounces.map((bounce) => ({ ...bounce, listId: list.id })),
        ),
      ...(options.pace ? { pace: options.pace } : {}),
      clock: options.clock ?? app.clock,
      outage,
      control: sendControlOf(app.db, bulletin.id, options.command ?? 'send'),
      ...(options.events ? { events: options.events } : {}),
      ...(options.leaveWhilePaused ? { leaveWhilePaused: options.leaveWhilePaused } : {}),
    },
    {
      bulletinId: bulletin.id,
      listId: list.id,
      retry: options.retry,
      resendUncertain: options.resendUncertain,
      waitForDeferred: options.waitForDeferred,
      ...(options.leaseMs === undefined ? {} : { leaseMs: options.leaseMs }),
      ...(options.claimSize === undefined ? {} : { claimSize: options.claimSize }),
    },
  );
  const before = await ride(() => countByState(app.db, bulletin.id));
  const inDoubt: InDoubt = { uncertain: before.uncertain, leftInFlight, resent: options.resendUncertain };
  options.onStart?.(dispatcher, bulletin, openDeliveries(before), inDoubt);
  const events = options.events;
  events?.sendStarted?.({
    bulletinId: bulletin.id,
    total: openDeliveries(before),
    command: options.command ?? 'send',
    rate: options.pace?.rate ?? options.rate ?? null,
  });
  const ended = (end: string) => events?.sendEnded?.({ bulletinId: bulletin.id, end, ...dispatcher.counts });
  let end;
  try {
    end = await dispatcher.run();
  } catch (error) {
    ended(`error: ${error instanceof Error ? error.message : String(error)}`);
    throw error;
  }
  ended(end);
  // Each of these is safe to repeat: finishing sets the time once, the others only read.
  const finished = await ride(() => finishBulletinIfDone(app.db, bulletin.id));
  const counts = await ride(() => countByState(app.db, bulletin.id));
  const due = await ride(() => nextDueAt(app.db, bulletin.id));
  return {
    bulletinId: bulletin.id,
    list: list.slug,
    subject: compiled.subject,
    end,
    finished,
    thisRun: { ...dispatcher.counts },
    counts,
    nextAttemptAt: due?.toISOString() ?? null,
    relay: options.transport.description,
    halt: dispatcher.halt,
    inDoubt,
    cancelledBy: dispatcher.cancelledBy,
  };
}

/**
 * Claims left in `sending` by a process that is gone (its lease expired, or it ran on this host and
 * its pid is dead) become `uncertain`: perhaps sent, perhaps not.
 */
async function reclaimAbandoned(app: App, bulletinId: number): Promise<number> {
  const host = hostname();
  const dead = (await selectSendingOwners(app.db, bulletinId)).filter((owner) => {
    const parsed = parseClaimOwner(owner);
    return parsed !== null && parsed.host === host && !isProcessAlive(parsed.pid);
  });
  return expireAbandonedClaims(app.db, bulletinId, dead);
}
