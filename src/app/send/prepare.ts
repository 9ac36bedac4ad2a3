// Use case `send` (first half): reads and checks the bulletin file, finds its list and whether an
// unfinished send of it exists (then the send resumes it), compiles it once, and says what the
// author must confirm: recipients, a sample, DKIM and warnings. Reads only: repeatable after an outage.
import { readFile } from 'node:fs/promises';
import { basename } from 'node:path';
import { BulletinError } from '../../domain/errors.js';
import type { MailingList } from '../../domain/list.js';
import { compileBulletin, parseBulletinSource, SAMPLE_RECIPIENT, type CompiledBulletin, type MessageIdVersion, type TemplateSet } from '../../render/index.js';
import { DatabaseOutage } from '../../send/database-outage.js';
import { findBulletinByReference, findUnfinishedBulletin, type StoredBulletin } from '../../store/bulletins.js';
import { countByState } from '../../store/deliveries.js';
import { selectMembers } from '../../store/memberships.js';
import type { App } from '../context.js';
import { describeDkim, loadDkim } from '../dkim-keys.js';
import { requireList } from '../lists.js';
import { installationKeys } from '../secret.js';
import { resolveAudience, storedAudience, type Audience, type AudienceRequest } from '../audience.js';
import { countAudience, sampleAudience } from '../../store/audience.js';
import { openDeliveries } from './bulletins.js';

export interface SendRequest {
  readonly file: string;
  /** The list slug; default: the bulletin's front matter `list`. */
  readonly list?: string;
  readonly templatesDir?: string;
  readonly verp?: boolean;
  /** Who gets it (default: every active member): `--where` or `--segment`. */
  readonly audience?: AudienceRequest;
  /** Schedules the send for this moment instead of sending now (src/app/schedule.ts). */
  readonly at?: Date;
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
  /** Who it goes to: frozen with the bulletin when its send starts. */
  readonly audience: Audience;
  /** The first few addresses of the audience, by address. */
  readonly audienceSample: readonly string[];
  /** Set for a scheduled send: when it is to start (its audience is chosen then). */
  readonly scheduledFor: Date | null;
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
    const audience = await planAudience(app, list, resuming, request);
    if (resuming && request.at !== undefined) {
      throw new BulletinError(
        'BAD_INPUT',
        `Bulletin ${resuming.id} was sent from this file and is not finished: resume it (bulletin resume ${resuming.id}) rather than scheduling it again.`,
      );
    }
    if (request.at !== undefined && request.at.getTime() <= app.clock.now().getTime()) {
      throw new BulletinError('BAD_INPUT', `--at ${request.at.toISOString()} is not in the future; send now without --at, or name a later time.`);
    }
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
          date: request.at ?? app.clock.now(),
          dkim: await loadDkim(app.config),
          ...(await resolveInReplyTo(app, list, source.inReplyTo)),
          ...(request.templatesDir === undefined ? {} : { templatesDir: request.templatesDir }),
        });
    const recipients = resuming ? openDeliveries(await countByState(app.db, resuming.id)) : await countAudience(app.db, list.id, audience.filter);
    if (!resuming && audience.filter !== null && recipients === 0 && request.at === undefined) {
      throw new BulletinError(
        'BAD_INPUT',
        `The filter matches no active member of "${list.slug}": nothing to send (try it with bulletin subscribers count --list ${list.slug} --where …).`,
      );
    }
    const audienceSample = (await sampleAudience(app.db, list.id, audience.filter, 5)).map((member) => member.email);
    const first = audience.filter === null ? await firstActiveMember(app, list) : ((await sampleAudience(app.db, list.id, audience.filter, 1))[0] ?? null);
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
      audience,
      audienceSample,
      scheduledFor: request.at ?? null,
    };
  });
}

/**
 * A new send's audience comes from --where / --segment; a resumed one keeps the audience it was
 * started with, and naming another is refused (its deliveries were chosen then).
 */
async function planAudience(app: App, list: MailingList, resuming: StoredBulletin | null, request: SendRequest): Promise<Audience> {
  const asked = request.audience ?? {};
  if (!resuming) return resolveAudience(app.db, list, asked);
  const kept = storedAudience(resuming.audienceFilter, resuming.audienceSegment);
  const wanted = asked.where ?? (asked.segment === undefined ? undefined : (await resolveAudience(app.db, list, asked)).filterText);
  if ((asked.where !== undefined || asked.segment !== undefined) && wanted !== kept.filterText) {
    throw new BulletinError(
      'BAD_INPUT',
      `Bulletin ${resuming.id} was started from this file for ${kept.filterText === null ? 'every active member' : `the members matching ${kept.filterText}`}; it resumes with that audience, so send it without --where/--segment (or finish it first).`,
    );
  }
  return kept;
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

export async function compileStored(app: App, bulletin: StoredBulletin, list: MailingList): Promise<CompiledBulletin> {
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
