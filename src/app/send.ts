// Use cases `send`, `resume`, `status` and `deliveries`: a bulletin becomes one tracked delivery per
// active subscriber, sent by the dispatcher; a second `send` of the same unfinished bulletin resumes
// it; after a crash, deliveries left in flight become `uncertain` and are re-sent with the same
// Message-ID (or held, on request). Every database step of a send rides out an outage (a pause and
// a retry, see DatabaseOutage), and each is safe to repeat.
import { readFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { basename } from 'node:path';
import { BulletinError } from '../domain/errors.js';
import type { DeliveryState, RetryPolicy } from '../domain/delivery.js';
import type { MailingList } from '../domain/list.js';
import {
  compileBulletin,
  MESSAGE_ID_VERSION,
  parseBulletinSource,
  SAMPLE_RECIPIENT,
  type CompiledBulletin,
  type MessageIdVersion,
  type TemplateSet,
} from '../render/index.js';
import { DatabaseOutage } from '../send/database-outage.js';
import type { AdaptivePace } from '../send/adaptive.js';
import { SharedPacer } from '../send/shared-pacer.js';
import { parseRate } from '../send/throttle.js';
import { reserveSlots } from '../store/send-pacing.js';
import { Dispatcher, type DispatchEnd, type DispatchHalt, type Pacer } from '../send/dispatcher.js';
import type { Clock } from '../domain/clock.js';
import type { Transport } from '../send/transport.js';
import {
  findBulletin,
  findBulletinByReference,
  findUnfinishedBulletin,
  finishBulletinIfDone,
  insertBulletin,
  reopenBulletin,
  storeArchiveBody,
  selectUnfinishedBulletinIds,
  latestBulletin,
  type StoredBulletin,
} from '../store/bulletins.js';
import {
  countByState,
  countSentSince,
  enqueueDeliveries,
  expireAbandonedClaims,
  nextDueAt,
  requeueDeliveries,
  selectDeliveries,
  selectSendingOwners,
  topReplies,
  type DeliveryRow,
  type StateCounts,
} from '../store/deliveries.js';
import { countMembers, forEachMemberBatch, findMember, selectMembers } from '../store/memberships.js';
import { countComplaints } from '../store/complaints.js';
import { findListById, lockList } from '../store/lists.js';
import { isProcessAlive } from '../store/database.js';
import type { App } from './context.js';
import { recordSmtpBounces } from './bounces.js';
import { requireList } from './lists.js';
import { describeDkim, loadDkim } from './dkim-keys.js';
import { installationKeys } from './secret.js';
import { checkAddress } from './subscribers.js';

export interface SendRequest {
  readonly file: string;
  /** The list slug; default: the bulletin's front matter `list`. */
  readonly list?: string;
  readonly templatesDir?: string;
  readonly verp?: boolean;
  /** Waits out the database going away (default: an outage of its own, said nowhere). */
  readonly outage?: DatabaseOutage;
}

/** Everything decided before the first message: shown to the user for confirmation. */
export interface SendPlan {
  readonly list: MailingList;
  readonly sourceText: string;
  readonly sourceName: string;
  readonly compiled: CompiledBulletin;
  /** The unfinished bulletin this send resumes, if any. */
  readonly resuming: StoredBulletin | null;
  /** Recipients a new send would enqueue (active members), or open deliveries of the resumed one. */
  readonly recipients: number;
  readonly sample: { readonly to: string; readonly subject: string; readonly text: string };
  readonly verp: boolean;
  /** The DKIM signatures, and whether d= aligns with From. */
  readonly dkim: string;
  /** What the author should see before sending: empty subscriber fields in the archive copy, DKIM alignment. */
  readonly warnings: readonly string[];
}

export async function prepareSend(app: App, request: SendRequest): Promise<SendPlan> {
  let sourceText: string;
  try {
    sourceText = await readFile(request.file, 'utf8');
  } catch (error) {
    throw new BulletinError('BAD_INPUT', `Cannot read ${request.file}: ${(error as Error).message}.`);
  }
  const sourceName = basename(request.file);
  const source = parseBulletinSource(sourceText, request.file);
  const slug = request.list ?? source.list;
  if (!slug) throw new BulletinError('USAGE', `Name the list: --list <slug>, or \`list:\` in the front matter of ${request.file}.`);
  if (request.list && source.list && request.list !== source.list) {
    throw new BulletinError('BAD_INPUT', `${request.file} says it is for the list "${source.list}", but --list names "${request.list}".`);
  }
  const outage = request.outage ?? new DatabaseOutage();
  // Reads only: after an outage it all starts again.
  return outage.ride(async () => {
    const list = await requireList(app.db, slug);
    const resuming = await findUnfinishedBulletin(app.db, list.id, sourceText);
    const signing = (await installationKeys(app)).signing;
    const verp = resuming?.verp ?? request.verp ?? false;
    const compiled = resuming
      ? await compileStored(app, resuming, list)
      : await compileBulletin({
          source,
          list,
          bulletinKey: 'preview',
          signing,
          verp,
          date: app.clock.now(),
          dkim: await loadDkim(app.config),
          ...(await resolveInReplyTo(app, list, source.inReplyTo)),
          ...(request.templatesDir === undefined ? {} : { templatesDir: request.templatesDir }),
        });
    const recipients = resuming ? openDeliveries(await countByState(app.db, resuming.id)) : await countMembers(app.db, list.id, 'active');
    const first = await firstActiveMember(app, list);
    const sampleRecipient = first ?? SAMPLE_RECIPIENT;
    const text = compiled.renderText(sampleRecipient);
    const dkim = describeDkim(compiled.dkimSignatures, list.from.address);
    return {
      dkim: dkim.line,
      warnings: [...compiled.emptyInArchive.map((place) => `archive copy: ${place}`), ...(dkim.warning === null ? [] : [dkim.warning])],
      list,
      sourceText,
      sourceName,
      compiled,
      resuming,
      recipients,
      verp,
      sample: { to: sampleRecipient.email, subject: compiled.subject, text: text.slice(0, 600) },
    };
  });
}

function openDeliveries(counts: StateCounts): number {
  return counts.queued + counts.sending + counts.deferred + counts.uncertain;
}

async function firstActiveMember(app: App, list: MailingList) {
  const [first] = await selectMembers(app.db, { listId: list.id, status: 'active', limit: 1 });
  return first ?? null;
}

/**
 * Front matter `in-reply-to` names an earlier bulletin of the list by id or by the file it was sent
 * from; the renderer threads to that bulletin's key (its id) and its Message-IDs' version.
 */
async function resolveInReplyTo(
  app: App,
  list: MailingList,
  reference: string | null,
): Promise<{ inReplyToBulletinKey: string | null; inReplyToMessageIdVersion?: MessageIdVersion }> {
  if (reference === null) return { inReplyToBulletinKey: null };
  const earlier = await findBulletinByReference(app.db, list.id, reference);
  if (!earlier) {
    throw new BulletinError('BAD_INPUT', `in-reply-to names "${reference}", but no bulletin of "${list.slug}" has that id or file name.`);
  }
  return { inReplyToBulletinKey: String(earlier.id), inReplyToMessageIdVersion: messageIdVersionOf(earlier) };
}

function messageIdVersionOf(bulletin: StoredBulletin): MessageIdVersion {
  return bulletin.messageIdVersion === 1 ? 1 : 2;
}

async function compileStored(app: App, bulletin: StoredBulletin, list: MailingList): Promise<CompiledBulletin> {
  const source = parseBulletinSource(bulletin.source, bulletin.sourceName);
  return compileBulletin({
    source,
    ...(await resolveInReplyTo(app, list, source.inReplyTo)),
    list,
    bulletinKey: String(bulletin.id),
    signing: (await installationKeys(app)).signing,
    messageIdVersion: messageIdVersionOf(bulletin),
    templates: bulletin.templates as unknown as TemplateSet,
    verp: bulletin.verp,
    date: bulletin.sentDate,
    dkim: await loadDkim(app.config),
  });
}

export interface RunOptions {
  readonly transport: Transport;
  /**
   * Paces the messages. Default: the send's pace shared through the database by all its workers,
   * at `rate` messages per second.
   */
  readonly pacer?: Pacer;
  /** Messages per second, for the shared pace (when no `pacer` is given). */
  readonly rate?: number;
  /** Adapts the pacer's rate to relay pushback. */
  readonly pace?: AdaptivePace;
  readonly retry: RetryPolicy;
  readonly resendUncertain: boolean;
  readonly waitForDeferred: boolean;
  readonly leaseMs?: number;
  /** Deliveries claimed at a time (default: 20 per connection, at least 100). */
  readonly claimSize?: number;
  readonly clock?: Clock;
  /** Called once the dispatcher exists, so the caller can show progress and stop it. */
  readonly onStart?: (dispatcher: Dispatcher, bulletin: StoredBulletin, total: number, inDoubt: InDoubt) => void;
  /** Waits out the database going away, at every step (default: an outage of its own, said nowhere). */
  readonly outage?: DatabaseOutage;
}

/**
 * Deliveries of a bulletin whose message may already have reached the receiver when its send
 * resumes: in flight when a sender stopped (a crash, a kill), or cut off before the relay's answer.
 */
export interface InDoubt {
  /** Uncertain ones now: re-sent under their first Message-ID (`resent`), or held. */
  readonly uncertain: number;
  /** Of those, how many this resume found still claimed by a sender that is gone. */
  readonly leftInFlight: number;
  readonly resent: boolean;
}

export interface SendSummary {
  readonly bulletinId: number;
  readonly list: string;
  readonly subject: string;
  readonly end: DispatchEnd;
  readonly finished: boolean;
  readonly thisRun: { sent: number; deferred: number; failed: number; uncertain: number; skipped: number };
  readonly counts: StateCounts;
  readonly nextAttemptAt: string | null;
  readonly relay: string;
  /** Set when the send stopped by itself: an unusable relay, a message too big, or held (see DispatchHalt). */
  readonly halt: DispatchHalt | null;
  /** What this run found in doubt when it began (see InDoubt). */
  readonly inDoubt: InDoubt;
}

/** Stores the bulletin and enqueues its deliveries (or resumes it), then sends until done or stopped. */
export async function runSend(app: App, plan: SendPlan, options: RunOptions): Promise<SendSummary> {
  const outage = options.outage ?? new DatabaseOutage();
  // One transaction, tried again after an outage. If its COMMIT went out and the answer was lost, it
  // may be saved: the next try finds that bulletin (the list's row lock keeps two sends of one
  // bulletin from both creating it) and goes on with it.
  const bulletin =
    plan.resuming ??
    (await outage.ride(() =>
      app.db.transaction(async (tx) => {
        await lockList(tx, plan.list.id);
        const existing = await findUnfinishedBulletin(tx, plan.list.id, plan.sourceText);
        if (existing) return existing;
        const stored = await insertBulletin(tx, {
          listId: plan.list.id,
          subject: plan.compiled.source.subject,
          source: plan.sourceText,
          sourceName: plan.sourceName,
          templates: plan.compiled.templates as unknown as Record<string, string>,
          verp: plan.verp,
          sentDate: plan.compiled.date,
          messageIdVersion: MESSAGE_ID_VERSION,
        });
        await enqueueDeliveries(tx, stored.id, plan.list.id);
        // What the web archive will show, rendered now, once.
        await storeArchiveBody(tx, stored.id, plan.compiled.archiveBody());
        return stored;
      }),
    ));
  // The plan's bulletin was compiled from exactly what is stored (a resumed one from the store
  // itself): it is sent as compiled, a new one under its id; compiling the largest bulletin again
  // would double its memory.
  return dispatchBulletin(app, bulletin, plan.list, { ...options, outage }, plan.resuming ? plan.compiled : plan.compiled.withKey(String(bulletin.id)));
}

/** States `bulletin retry` may put back to work. */
export const RETRYABLE_STATES: readonly DeliveryState[] = ['failed', 'uncertain', 'deferred'];

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
  const refused = states.filter((state) => !RETRYABLE_STATES.includes(state));
  if (refused.length > 0) {
    throw new BulletinError('USAGE', `Only ${RETRYABLE_STATES.join(', ')} deliveries can be retried, not ${refused.join(', ')}.`);
  }
  const outage = options.outage ?? new DatabaseOutage();
  const bulletin = await outage.ride(() => findBulletin(app.db, bulletinId));
  if (!bulletin) throw new BulletinError('NOT_FOUND', `There is no bulletin ${bulletinId} (see \`bulletin status\`).`);
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

/** Unfinished bulletins (of one list, or of all), oldest first: the work `bulletin worker` joins. */
export async function unfinishedBulletins(app: App, listSlug?: string, outage = new DatabaseOutage()): Promise<number[]> {
  return outage.ride(async () => {
    const list = listSlug === undefined ? null : await requireList(app.db, listSlug);
    return selectUnfinishedBulletinIds(app.db, list?.id ?? null);
  });
}

/** `bulletin resume <id>`: picks up an unfinished bulletin (or its deferred deliveries) where it stopped. */
export async function resumeSend(app: App, bulletinId: number, options: RunOptions): Promise<SendSummary> {
  const outage = options.outage ?? new DatabaseOutage();
  const bulletin = await outage.ride(() => findBulletin(app.db, bulletinId));
  if (!bulletin) throw new BulletinError('NOT_FOUND', `There is no bulletin ${bulletinId} (see \`bulletin status\`).`);
  const list = await outage.ride(() => listOf(app, bulletin));
  return dispatchBulletin(app, bulletin, list, { ...options, outage });
}

async function listOf(app: App, bulletin: StoredBulletin): Promise<MailingList> {
  const list = await findListById(app.db, bulletin.listId);
  if (!list) throw new BulletinError('NOT_FOUND', `The list of bulletin ${bulletin.id} no longer exists.`);
  return list;
}

async function dispatchBulletin(app: App, bulletin: StoredBulletin, list: MailingList, options: RunOptions, ready?: CompiledBulletin): Promise<SendSummary> {
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
      db: app.db,
      transport: options.transport,
      pacer,
      render: (recipient) => compiled.render(recipient),
      recordHardBounces: (bounces) => recordSmtpBounces(app, bounces.map((bounce) => ({ ...bounce, listId: list.id }))),
      ...(options.pace ? { pace: options.pace } : {}),
      clock: options.clock ?? app.clock,
      outage,
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
  const end = await dispatcher.run();
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
  };
}

/**
 * Claims left in `sending` by a process that is gone (its lease expired, or it ran on this host and
 * its pid is dead) become `uncertain`: perhaps sent, perhaps not.
 */
async function reclaimAbandoned(app: App, bulletinId: number): Promise<number> {
  const host = hostname();
  const dead = (await selectSendingOwners(app.db, bulletinId)).filter((owner) => {
    const [ownerHost, pid] = owner.split(':');
    return ownerHost === host && !isProcessAlive(Number(pid));
  });
  return expireAbandonedClaims(app.db, bulletinId, dead);
}

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

/** Sends one copy to `address` (the list's sample values if they are not a member); records nothing. */
export async function sendTestCopy(app: App, plan: SendPlan, address: string, transport: Transport, outage = new DatabaseOutage()) {
  const email = checkAddress(address);
  const member = await outage.ride(() => findMember(app.db, plan.list.id, email));
  const outcome = await transport.send(plan.compiled.render(member ? { ...member, subscription: member.resubscriptions } : { ...SAMPLE_RECIPIENT, email }));
  return { to: email, outcome };
}

export interface BulletinStatus {
  readonly bulletinId: number;
  readonly list: string;
  readonly subject: string;
  readonly createdAt: string;
  readonly finishedAt: string | null;
  readonly counts: StateCounts;
  readonly total: number;
  /** Messages per second over the last minute. */
  readonly rate: number;
  readonly etaSeconds: number | null;
  readonly nextAttemptAt: string | null;
  readonly commonReplies: { state: DeliveryState; reply: string; count: number }[];
  /** Feedback-loop complaints (ARF) about this bulletin's messages. */
  readonly complaints: number;
}

export async function bulletinStatus(app: App, bulletinId?: number): Promise<BulletinStatus> {
  const bulletin = bulletinId === undefined ? await latestBulletin(app.db) : await findBulletin(app.db, bulletinId);
  if (!bulletin) {
    throw new BulletinError('NOT_FOUND', bulletinId === undefined ? 'No bulletin has been sent yet.' : `There is no bulletin ${bulletinId}.`);
  }
  const list = await listOf(app, bulletin);
  const counts = await countByState(app.db, bulletin.id);
  const rate = (await countSentSince(app.db, bulletin.id, 60)) / 60;
  const open = openDeliveries(counts);
  const due = await nextDueAt(app.db, bulletin.id);
  return {
    bulletinId: bulletin.id,
    list: list.slug,
    subject: bulletin.subject,
    createdAt: bulletin.createdAt.toISOString(),
    finishedAt: bulletin.finishedAt?.toISOString() ?? null,
    counts,
    total: Object.values(counts).reduce((sum, count) => sum + count, 0),
    rate,
    etaSeconds: open === 0 ? 0 : rate > 0 ? Math.ceil(open / rate) : null,
    nextAttemptAt: due?.toISOString() ?? null,
    commonReplies: await topReplies(app.db, bulletin.id, ['deferred', 'failed', 'uncertain'], 5),
    complaints: await countComplaints(app.db, bulletin.id),
  };
}

export async function listDeliveries(
  app: App,
  bulletinId: number,
  query: { states: DeliveryState[] | null; inDoubt?: boolean; afterId: number; limit: number },
): Promise<DeliveryRow[]> {
  if (!(await findBulletin(app.db, bulletinId))) throw new BulletinError('NOT_FOUND', `There is no bulletin ${bulletinId}.`);
  return selectDeliveries(app.db, { bulletinId, ...query });
}
