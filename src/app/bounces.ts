// `bulletin bounces process`: reads bounce messages from an mbox, a maildir or a directory of .eml files,
// finds whose they are (a verified VERP token, or the original Message-ID of a delivery), records each
// hard bounce once, fails its delivery, and marks members bounced at the threshold. Delays change nothing.
import { createReadStream } from 'node:fs';
import { open, readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { splitMbox, looksLikeMbox } from '../bounce/mbox.js';
import { readBounce, type BounceMessage, type DeliveryReport } from '../bounce/report.js';
import { BulletinError } from '../domain/errors.js';
import { verifyToken, type TokenKeyring, type TokenSubject } from '../domain/token.js';
import type { Sql } from '../store/database.js';
import { countBouncesSinceSubscribed, insertBounce } from '../store/bounces.js';
import { failDeliveryByMessageId, skipPendingDeliveries, type BouncedDelivery } from '../store/deliveries.js';
import { findListById } from '../store/lists.js';
import { findMemberById, markBouncedAtThreshold } from '../store/memberships.js';
import type { App } from './context.js';
import { installationKeys } from './secret.js';

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
  readonly unrecognised: readonly { place: MessagePlace; reason: string }[];
  readonly nowBounced: readonly { list: string; email: string | null; bounces: number }[];
  readonly outcomes: readonly BounceOutcome[];
}

interface FoundMessage {
  readonly place: MessagePlace;
  readonly raw: Buffer;
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

function identify(bounce: BounceMessage, keyring: TokenKeyring): { subject: TokenSubject | null; badToken: boolean } {
  for (const token of bounce.verpTokens) {
    const subject = verifyToken(token, 'verp', keyring);
    if (subject !== null) return { subject, badToken: false };
  }
  return { subject: null, badToken: bounce.verpTokens.length > 0 };
}

function replyFor(report: DeliveryReport): string {
  return `bounce ${report.status}: ${report.diagnostic ?? `${report.action ?? 'failed'}${report.finalRecipient ? ` for ${report.finalRecipient}` : ''}`}`;
}

class DryRunRollback extends Error {}

export async function processBounces(app: App, path: string, label: string, options: ProcessBouncesOptions = {}): Promise<BounceRunSummary> {
  const threshold = options.threshold ?? app.config.bounceThreshold;
  if (!Number.isInteger(threshold) || threshold < 1) throw new BulletinError('USAGE', `The bounce threshold must be a whole number of at least 1, not ${threshold}.`);
  const keyring = (await installationKeys(app)).keyring;
  const dryRun = options.dryRun ?? false;
  const listSlugs = new Map<number, string>();

  const slugOf = async (sql: Sql, listId: number): Promise<string> => {
    let slug = listSlugs.get(listId);
    if (slug === undefined) {
      slug = (await findListById(sql, listId))?.slug ?? `#${listId}`;
      listSlugs.set(listId, slug);
    }
    return slug;
  };

  const hardBounce = async (tx: Sql, place: MessagePlace, bounce: BounceMessage, report: DeliveryReport): Promise<BounceOutcome> => {
    const { subject, badToken } = identify(bounce, keyring);
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
    if (who === null) {
      const reason = badToken
        ? 'its VERP address does not verify (tampered, truncated or signed by another installation) and it quotes no Message-ID we sent'
        : bounce.originalMessageIds.length > 0
          ? `no recipient identifiable: no VERP address, and no delivery has the Message-ID ${bounce.originalMessageIds.join(', ')}`
          : 'no recipient identifiable: no VERP address and no original Message-ID';
      return { kind: 'unrecognised', place, reason };
    }
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
      diagnostic: report.diagnostic ?? '',
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
      identifiedBy: delivery && subject ? 'verp+message-id' : delivery ? 'message-id' : 'verp',
      bounces,
      nowBounced,
    };
  };

  const judge = async (message: FoundMessage, unit: <T>(work: (tx: Sql) => Promise<T>) => Promise<T>): Promise<BounceOutcome> => {
    if (message.problem !== undefined) return { kind: 'unrecognised', place: message.place, reason: message.problem };
    const bounce = await readBounce(message.raw);
    const report = bounce.report;
    if (report === null) return { kind: 'unrecognised', place: message.place, reason: bounce.problem ?? 'not a delivery status report' };
    if (report.outcome === 'temporary') return { kind: 'delayed', place: message.place, status: report.status, recipient: report.finalRecipient };
    if (report.outcome === 'success') {
      return { kind: 'unrecognised', place: message.place, reason: `not a failure: it reports ${report.action ?? 'a delivery'} (status ${report.status})` };
    }
    return unit((tx) => hardBounce(tx, message.place, bounce, report));
  };

  const outcomes: BounceOutcome[] = [];
  const run = async (unit: <T>(work: (tx: Sql) => Promise<T>) => Promise<T>) => {
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
