// `bulletin bounces process`: reads what came back (bounces, ARF complaints, unsubscribe requests) from
// an mbox, a maildir or a directory of .eml files; `handleMail` does the same for one message that
// `bulletin inbound` received. It finds whose each is (a verified VERP token, the original Message-ID of
// a delivery, or a request's unsubscribe token), records each hard bounce once, fails its delivery,
// marks members bounced at the threshold, and unsubscribes complainers and requesters. Delays change nothing.
import { createReadStream } from 'node:fs';
import { open, readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { splitMbox, looksLikeMbox } from '../bounce/mbox.js';
import type { ComplaintReport } from '../bounce/complaint.js';
import { readInboundMail, type InboundAddressKind } from '../bounce/inbound-mail.js';
import type { BounceMessage, DeliveryReport } from '../bounce/report.js';
import type { UnsubscribeRequest } from '../bounce/request.js';
import { insertComplaint } from '../store/complaints.js';
import { BulletinError } from '../domain/errors.js';
import { verifyToken, type TokenKeyring, type TokenSubject } from '../domain/token.js';
import type { Sql } from '../store/database.js';
import { countBouncesSinceSubscribed, insertBounce } from '../store/bounces.js';
import { failDeliveryByMessageId, findDeliveryByMessageId, skipPendingDeliveries, type BouncedDelivery } from '../store/deliveries.js';
import { findListById } from '../store/lists.js';
import { changeMembershipStatus, findMemberById, markBouncedAtThreshold } from '../store/memberships.js';
import type { App } from './context.js';
import { installationKeys } from './secret.js';
import { leaveByLink, OUT_OF_DATE } from './unsubscribe.js';

export interface ProcessBouncesOptions {
  /** Hard bounces that make a membership `bounced`; default: the configuration's (3). */
  readonly threshold?: number;
  /** Work everything out and report it, inside a transaction that is rolled back. */
  readonly dryRun?: boolean;
}

/** Where a message was found: a file, or a file and the line of its `From ` line in an mbox. */
export interface MessagePlace {
  readonly file: string;
  readonly line: number | null;
  readonly index: number | null;
}

export type BounceOutcome =
  | {
      readonly kind: 'hard';
      readonly place: MessagePlace;
      /** False: this bounce was recorded by an earlier run, and counted then. */
      readonly recorded: boolean;
      readonly list: string;
      readonly email: string | null;
      readonly status: string;
      readonly diagnostic: string | null;
      readonly deliveryId: number | null;
      /** Whether this bounce moved its delivery to `failed` (it may have been failed already). */
      readonly deliveryFailed: boolean;
      readonly identifiedBy: 'verp+message-id' | 'verp' | 'message-id';
      readonly bounces: number;
      readonly nowBounced: boolean;
      /** Action: failed with a 4.x.x status: the relay gave up on a temporary error (expired in its queue). */
      readonly expired: boolean;
    }
  | {
      /** An unsubscribe request mailed to the list's -unsubscribe address, whose token verified. */
      readonly kind: 'unsubscribe';
      readonly place: MessagePlace;
      readonly list: string;
      /** Masked, as the web pages show it. */
      readonly maskedAddress: string;
      readonly outcome: 'unsubscribed' | 'already unsubscribed';
    }
  | {
      /** A feedback-loop complaint (ARF) about one of our messages. */
      readonly kind: 'complaint';
      readonly place: MessagePlace;
      /** False: recorded by an earlier run. */
      readonly recorded: boolean;
      readonly list: string;
      readonly email: string | null;
      readonly feedbackType: string;
      readonly bulletinId: number | null;
      readonly deliveryId: number | null;
      readonly identifiedBy: 'verp+message-id' | 'verp' | 'message-id';
      /** Whether it moved the membership from active to unsubscribed (source `complaint`). */
      readonly unsubscribed: boolean;
    }
  | { readonly kind: 'delayed'; readonly place: MessagePlace; readonly status: string; readonly recipient: string | null }
  | { readonly kind: 'unrecognised'; readonly place: MessagePlace; readonly reason: string };

export interface BounceRunSummary {
  readonly dryRun: boolean;
  readonly threshold: number;
  readonly messagesRead: number;
  readonly hardBouncesRecorded: number;
  readonly alreadyRecorded: number;
  readonly deliveriesFailed: number;
  readonly delayedIgnored: number;
  /** Unsubscribe requests by mail whose token verified (the member left, or had left already). */
  readonly unsubscribeRequests: number;
  /** Complaints recorded (a complaint read again is not counted twice). */
  readonly complaintsRecorded: number;
  readonly unrecognised: readonly { place: MessagePlace; reason: string }[];
  readonly nowBounced: readonly { list: string; email: string | null; bounces: number }[];
  readonly outcomes: readonly BounceOutcome[];
}

export interface FoundMessage {
  readonly place: MessagePlace;
  readonly raw: Buffer;
  /** Which of a list's addresses it was sent to, when known (SMTP's RCPT TO). */
  readonly sentTo?: InboundAddressKind;
  /** Set when the bytes are known not to be a message (an mbox's preamble). */
  readonly problem?: string;
}

export function describePlace(place: MessagePlace): string {
  return place.line === null ? place.file : `${place.file}:${place.line} (message ${place.index})`;
}

async function isDirectory(path: string): Promise<boolean> {
  return stat(path).then(
    (info) => info.isDirectory(),
    () => false,
  );
}

async function filesIn(directory: string, keep: (name: string) => boolean): Promise<string[]> {
  const entries = await readdir(directory, { withFileTypes: true });
  return entries
    .filter((entry) => entry.isFile() && !entry.name.startsWith('.') && keep(entry.name))
    .map((entry) => entry.name)
    .sort();
}

/**
 * Every message under `path` in order: an mbox file (it starts with a `From ` line) message by
 * message, any other file as one message, a maildir's new/ then cur/ (tmp/ is being written), or a
 * directory's *.eml files. `label` is the path as the user gave it, for reports.
 */
async function* messagesAt(path: string, label: string): AsyncGenerator<FoundMessage> {
  const info = await stat(path).catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT' || error.code === 'ENOTDIR') throw new BulletinError('NOT_FOUND', `There is no file or directory ${label}.`);
    throw new BulletinError('BAD_INPUT', `Cannot read ${label}: ${error.message}.`);
  });
  if (info.isDirectory()) {
    const maildir = (await isDirectory(join(path, 'cur'))) || (await isDirectory(join(path, 'new')));
    const folders = maildir ? ['new', 'cur'] : ['.'];
    for (const folder of folders) {
      const directory = join(path, folder);
      if (maildir && !(await isDirectory(directory))) continue;
      const names = await filesIn(directory, (name) => maildir || /\.eml$/i.test(name));
      for (const name of names) {
        const file = join(directory, name);
        const display = folder === '.' ? join(label, name) : join(label, folder, name);
        yield { place: { file: display, line: null, index: null }, raw: await readFile(file) };
      }
    }
    return;
  }
  if (!info.isFile()) throw new BulletinError('BAD_INPUT', `${label} is neither a file nor a directory.`);
  const head = Buffer.alloc(5);
  const handle = await open(path, 'r');
  try {
    await handle.read(head, 0, 5, 0);
  } finally {
    await handle.close();
  }
  if (!looksLikeMbox(head)) {
    yield { place: { file: label, line: null, index: null }, raw: await readFile(path) };
    return;
  }
  for await (const message of splitMbox(createReadStream(path))) {
    yield {
      place: { file: label, line: message.line, index: message.index },
      raw: message.raw,
      ...(message.index === 0 ? { problem: 'bytes before the first `From ` line of the mbox' } : {}),
    };
  }
}

function identify(verpTokens: readonly string[], keyring: TokenKeyring): { subject: TokenSubject | null; badToken: boolean } {
  for (const token of verpTokens) {
    const subject = verifyToken(token, 'verp', keyring);
    if (subject !== null) return { subject, badToken: false };
  }
  return { subject: null, badToken: verpTokens.length > 0 };
}

function replyFor(report: DeliveryReport): string {
  const what = `${report.status}: ${report.diagnostic ?? `${report.action ?? 'failed'}${report.finalRecipient ? ` for ${report.finalRecipient}` : ''}`}`;
  return report.outcome === 'expired' ? `expired at the relay: bounce ${what}` : `bounce ${what}`;
}

class DryRunRollback extends Error {}

type Unit = <T>(work: (tx: Sql) => Promise<T>) => Promise<T>;
type Judge = (message: FoundMessage, unit: Unit) => Promise<BounceOutcome>;

/** Who a VERP token or an original Message-ID names: the delivery when one carries the Message-ID. */
type Identified<D> = { delivery: D | null; subject: TokenSubject | null; badToken: boolean };

/** What each message is and what it changes: one judge for a whole run (it caches list slugs). */
function mailJudge(app: App, keyring: TokenKeyring, threshold: number): Judge {
  const listSlugs = new Map<number, string>();
  const slugOf = async (sql: Sql, listId: number): Promise<string> => {
    let slug = listSlugs.get(listId);
    if (slug === undefined) {
      slug = (await findListById(sql, listId))?.slug ?? `#${listId}`;
      listSlugs.set(listId, slug);
    }
    return slug;
  };
  const nobody = (found: Identified<unknown>, messageIds: readonly string[]): string =>
    found.badToken
      ? 'its VERP address does not verify (tampered, truncated or signed by another installation) and it quotes no Message-ID we sent'
      : messageIds.length > 0
        ? `no recipient identifiable: no VERP address, and no delivery has the Message-ID ${messageIds.join(', ')}`
        : 'no recipient identifiable: no VERP address and no original Message-ID';
  const identifiedBy = (found: Identified<unknown>) =>
    (found.delivery && found.subject ? 'verp+message-id' : found.delivery ? 'message-id' : 'verp') as 'verp+message-id' | 'verp' | 'message-id';

  const hardBounce = async (tx: Sql, place: MessagePlace, bounce: BounceMessage, report: DeliveryReport): Promise<BounceOutcome> => {
    const { subject, badToken } = identify(bounce.verpTokens, keyring);
    const reply = replyFor(report);
    let delivery: BouncedDelivery | null = null;
    for (const messageId of bounce.originalMessageIds) {
      delivery = await failDeliveryByMessageId(tx, {
        messageId,
        reply,
        listId: subject?.listId ?? null,
        subscriberId: subject?.subscriberId ?? null,
      });
      if (delivery !== null) break;
    }
    const who = delivery ?? subject;
    if (who === null) return { kind: 'unrecognised', place, reason: nobody({ delivery, subject, badToken }, bounce.originalMessageIds) };
    const { listId, subscriberId } = who;
    const member = await findMemberById(tx, listId, subscriberId);
    if (member === null && delivery === null) {
      return { kind: 'unrecognised', place, reason: 'its VERP address names nobody on the list any more (erased, or the list was deleted)' };
    }
    const recorded = await insertBounce(tx, {
      listId,
      subscriberId,
      deliveryId: delivery?.id ?? null,
      dedupKey: delivery ? `delivery:${delivery.id}` : bounce.messageId ? `message-id:${bounce.messageId}` : `sha256:${bounce.fingerprint}`,
      status: report.status,
      diagnostic: report.outcome === 'expired' ? `expired at the relay: ${report.diagnostic ?? ''}`.trim() : (report.diagnostic ?? ''),
      originalMessageId: bounce.originalMessageIds[0] ?? null,
      bounceMessageId: bounce.messageId,
      reportedAt: bounce.date,
    });
    const bounces = await countBouncesSinceSubscribed(tx, listId, subscriberId);
    const nowBounced = await markBouncedAtThreshold(tx, listId, subscriberId, threshold);
    if (nowBounced) await skipPendingDeliveries(tx, listId, subscriberId, 'skipped: bounced before its turn');
    return {
      kind: 'hard',
      place,
      recorded,
      list: await slugOf(tx, listId),
      email: member?.email ?? null,
      status: report.status,
      diagnostic: report.diagnostic,
      deliveryId: delivery?.id ?? null,
      deliveryFailed: delivery?.failed ?? false,
      identifiedBy: identifiedBy({ delivery, subject, badToken }),
      bounces,
      nowBounced,
      expired: report.outcome === 'expired',
    };
  };

  /** A complaint names its member by VERP or the original's Message-ID, never by an address it quotes. */
  const complaint = async (
    tx: Sql,
    place: MessagePlace,
    mail: { messageId: string | null; date: Date | null; fingerprint: string },
    report: ComplaintReport,
  ): Promise<BounceOutcome> => {
    const { subject, badToken } = identify(report.verpTokens, keyring);
    let delivery: Awaited<ReturnType<typeof findDeliveryByMessageId>> = null;
    for (const messageId of report.originalMessageIds) {
      delivery = await findDeliveryByMessageId(tx, { messageId, listId: subject?.listId ?? null, subscriberId: subject?.subscriberId ?? null });
      if (delivery !== null) break;
    }
    const who = delivery ?? subject;
    if (who === null) return { kind: 'unrecognised', place, reason: `a complaint, but ${nobody({ delivery, subject, badToken }, report.originalMessageIds)}` };
    const { listId, subscriberId } = who;
    const member = await findMemberById(tx, listId, subscriberId);
    if (member === null) return { kind: 'unrecognised', place, reason: 'a complaint about someone no longer on the list (erased, or the list was deleted)' };
    const recorded = await insertComplaint(tx, {
      listId,
      subscriberId,
      deliveryId: delivery?.id ?? null,
      bulletinId: delivery?.bulletinId ?? null,
      dedupKey: delivery ? `delivery:${delivery.id}` : mail.messageId ? `message-id:${mail.messageId}` : `sha256:${mail.fingerprint}`,
      feedbackType: report.feedbackType,
      userAgent: report.userAgent,
      reportMessageId: mail.messageId,
      reportedAt: mail.date,
    });
    // Gmail and Yahoo expect a bulk sender to stop mailing a complainer at once: unsubscribed, not bounced.
    const unsubscribed = await changeMembershipStatus(tx, { listId, subscriberId, from: ['active'], to: 'unsubscribed', source: 'complaint' });
    if (unsubscribed) await skipPendingDeliveries(tx, listId, subscriberId, 'skipped: unsubscribed (complaint) before its turn');
    return {
      kind: 'complaint',
      place,
      recorded,
      list: await slugOf(tx, listId),
      email: member.email,
      feedbackType: report.feedbackType,
      bulletinId: delivery?.bulletinId ?? null,
      deliveryId: delivery?.id ?? null,
      identifiedBy: identifiedBy({ delivery, subject, badToken }),
      unsubscribed,
    };
  };

  /** A request by mail: the first token that verifies decides; none changes nothing (and nobody is answered). */
  const request = async (tx: Sql, place: MessagePlace, ask: UnsubscribeRequest): Promise<BounceOutcome> => {
    let outOfDate = false;
    for (const token of ask.tokens) {
      const result = await leaveByLink(app, token, 'mailto', tx);
      if (result === OUT_OF_DATE) outOfDate = true;
      if (result === null || result === OUT_OF_DATE) continue;
      return { kind: 'unsubscribe', place, list: await slugOf(tx, result.listId), maskedAddress: result.owner.maskedAddress, outcome: result.outcome };
    }
    const reason = outOfDate
      ? 'an unsubscribe request whose link is out of date (the address subscribed again since); nothing changed'
      : ask.tokens.length === 0
        ? 'an unsubscribe request without a token; nothing changed'
        : 'an unsubscribe request whose token does not verify; nothing changed';
    return { kind: 'unrecognised', place, reason };
  };

  return async (message, unit) => {
    if (message.problem !== undefined) return { kind: 'unrecognised', place: message.place, reason: message.problem };
    const mail = await readInboundMail(message.raw, message.sentTo ?? null);
    if (mail.kind === 'unrecognised') return { kind: 'unrecognised', place: message.place, reason: mail.reason };
    if (mail.kind === 'complaint') return unit((tx) => complaint(tx, message.place, mail, mail.complaint));
    if (mail.kind === 'request') return unit((tx) => request(tx, message.place, mail.request));
    const report = mail.bounce.report;
    if (report === null) return { kind: 'unrecognised', place: message.place, reason: mail.bounce.problem ?? 'not a delivery status report' };
    if (report.outcome === 'temporary') return { kind: 'delayed', place: message.place, status: report.status, recipient: report.finalRecipient };
    if (report.outcome === 'success') {
      return { kind: 'unrecognised', place: message.place, reason: `not a failure: it reports ${report.action ?? 'a delivery'} (status ${report.status})` };
    }
    return unit((tx) => hardBounce(tx, message.place, mail.bounce, report));
  };
}

function checkThreshold(threshold: number): void {
  if (!Number.isInteger(threshold) || threshold < 1)
    throw new BulletinError('USAGE', `The bounce threshold must be a whole number of at least 1, not ${threshold}.`);
}

export async function processBounces(app: App, path: string, label: string, options: ProcessBouncesOptions = {}): Promise<BounceRunSummary> {
  const threshold = options.threshold ?? app.config.bounceThreshold;
  checkThreshold(threshold);
  const judge = mailJudge(app, (await installationKeys(app)).keyring, threshold);
  const dryRun = options.dryRun ?? false;

  const outcomes: BounceOutcome[] = [];
  const run = async (unit: Unit) => {
    for await (const message of messagesAt(path, label)) outcomes.push(await judge(message, unit));
  };
  if (dryRun) {
    // One transaction for the whole run, rolled back: counts build up across messages as they would.
    await app.db
      .transaction(async (tx) => {
        await run((work) => work(tx));
        throw new DryRunRollback();
      })
      .catch((error: unknown) => {
        if (!(error instanceof DryRunRollback)) throw error;
      });
  } else {
    await run((work) => app.db.transaction(work));
  }
  return summarize(outcomes, threshold, dryRun);
}

/**
 * A handler of single messages as they arrive (`bulletin inbound`): each is read and acted on in its
 * own transaction, exactly as `bounces process` would.
 */
export async function mailHandler(app: App, threshold = app.config.bounceThreshold): Promise<(message: FoundMessage) => Promise<BounceOutcome>> {
  checkThreshold(threshold);
  const judge = mailJudge(app, (await installationKeys(app)).keyring, threshold);
  return (message) => judge(message, (work) => app.db.transaction(work));
}

function summarize(outcomes: readonly BounceOutcome[], threshold: number, dryRun: boolean): BounceRunSummary {
  const hard = outcomes.filter((outcome) => outcome.kind === 'hard');
  return {
    dryRun,
    threshold,
    messagesRead: outcomes.length,
    hardBouncesRecorded: hard.filter((outcome) => outcome.recorded).length,
    alreadyRecorded: hard.filter((outcome) => !outcome.recorded).length,
    deliveriesFailed: hard.filter((outcome) => outcome.deliveryFailed).length,
    delayedIgnored: outcomes.filter((outcome) => outcome.kind === 'delayed').length,
    unsubscribeRequests: outcomes.filter((outcome) => outcome.kind === 'unsubscribe').length,
    complaintsRecorded: outcomes.filter((outcome) => outcome.kind === 'complaint' && outcome.recorded).length,
    unrecognised: outcomes.flatMap((outcome) => (outcome.kind === 'unrecognised' ? [{ place: outcome.place, reason: outcome.reason }] : [])),
    nowBounced: hard.filter((outcome) => outcome.nowBounced).map((outcome) => ({ list: outcome.list, email: outcome.email, bounces: outcome.bounces })),
    outcomes,
  };
}

/** A refusal at RCPT TO saying the mailbox does not exist, seen while sending (failure.ts row 11). */
export interface SmtpBounce {
  readonly listId: number;
  readonly deliveryId: number;
  readonly subscriberId: number;
  /** The enhanced status, e.g. 5.1.1. */
  readonly status: string;
  readonly reply: string;
  readonly messageId: string;
}

/**
 * Records hard bounces learnt at RCPT TO like those read from bounce messages (source `smtp`): one
 * per delivery (a report of the same delivery later counts nothing more), toward the same threshold,
 * after which the membership is `bounced` and its pending deliveries skipped.
 */
export async function recordSmtpBounces(app: App, bounces: readonly SmtpBounce[], threshold = app.config.bounceThreshold): Promise<void> {
  for (const bounce of bounces) {
    await app.db.transaction(async (tx) => {
      await insertBounce(tx, {
        listId: bounce.listId,
        subscriberId: bounce.subscriberId,
        deliveryId: bounce.deliveryId,
        dedupKey: `delivery:${bounce.deliveryId}`,
        status: bounce.status,
        diagnostic: bounce.reply,
        originalMessageId: bounce.messageId || null,
        bounceMessageId: null,
        reportedAt: null,
        source: 'smtp',
      });
      if (await markBouncedAtThreshold(tx, bounce.listId, bounce.subscriberId, threshold)) {
        await skipPendingDeliveries(tx, bounce.listId, bounce.subscriberId, 'skipped: bounced before its turn');
      }
    });
  }
}
