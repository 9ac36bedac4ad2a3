// `bulletin demo`: what a new user sees first. A demo list with a few hundred made-up subscribers
// (example.net addresses) in whatever database is configured, and the two sample bulletins of
// templates/demo/ (a notice and its follow-up) sent through the real engine into a local SMTP capture,
// then the archive exported. (Serving the pages is the command's: web sits above app.)
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { MailingList } from '../domain/list.js';
import { countMembers, findMember, selectMembers } from '../store/memberships.js';
import { findListBySlug } from '../store/lists.js';
import { exportArchive } from './archive.js';
import { sendSettings } from './config.js';
import type { App } from './context.js';
import { prepareSend, type SendPlan } from './send/prepare.js';
import { runOptions } from './send/options.js';
import { runSend, type RunOptions, type SendSummary } from './send/run.js';
import { startSmtpCapture } from './smtp-capture.js';
import { openTransport } from './transports.js';
import { unsubscribeLinkOf } from './unsubscribe.js';
import { importSubscribers } from './import-subscribers.js';
import { createList, updateList } from './lists.js';

export const DEMO_LIST = 'demo';
export const DEMO_SUBSCRIBERS = 300;
/** The notice, then its follow-up (which names the notice in `in-reply-to`). */
export const DEMO_BULLETINS = ['maintenance.md', 'maintenance-done.md'].map((name) => fileURLToPath(new URL(`../../templates/demo/${name}`, import.meta.url)));

const FIRST = [
  'Ada',
  'Alan',
  'Barbara',
  'Claude',
  'Dennis',
  'Edsger',
  'Frances',
  'Grace',
  'Hedy',
  'Ivan',
  'Joan',
  'Ken',
  'Leslie',
  'Margaret',
  'Niklaus',
  'Radia',
  'Sophie',
  'Tim',
  'Vint',
  'Whitfield',
];
const LAST = [
  'Lovelace',
  'Turing',
  'Liskov',
  'Shannon',
  'Ritchie',
  'Dijkstra',
  'Allen',
  'Hopper',
  'Lamarr',
  'Sutherland',
  'Clarke',
  'Thompson',
  'Lamport',
  'Hamilton',
  'Wirth',
  'Perlman',
  'Wilson',
  'Berners-Lee',
  'Cerf',
  'Diffie',
];
const DOMAINS = ['example.net', 'example.org', 'example.com'];

export interface DemoSetup {
  readonly list: MailingList;
  readonly createdList: boolean;
  readonly addedSubscribers: number;
  readonly activeSubscribers: number;
}

/** Creates (or brings up to date) the demo list and its subscribers; `baseUrl` is where `serve` will run. */
export async function setUpDemo(app: App, options: { baseUrl: string; workDir: string }): Promise<DemoSetup> {
  const existing = await findListBySlug(app.db, DEMO_LIST);
  const list = existing
    ? existing.baseUrl === options.baseUrl
      ? existing
      : await updateList(app, DEMO_LIST, { baseUrl: options.baseUrl })
    : await createList(app, DEMO_LIST, {
        name: 'ExampleNet-Bulletins',
        description: 'Service notices from ExampleNet (a bulletin demo list: every address on it is made up).',
        address: 'bulletins@lists.example.net',
        from: 'ExampleNet <noreply@example.net>',
        baseUrl: options.baseUrl,
      });
  let added = 0;
  if ((await findMember(app.db, list.id, demoAddress(0))) === null) {
    await mkdir(options.workDir, { recursive: true });
    const csv = join(options.workDir, 'subscribers.csv');
    const rows = Array.from({ length: DEMO_SUBSCRIBERS }, (_, index) => {
      const name = `${FIRST[index % FIRST.length]} ${LAST[Math.floor(index / FIRST.length) % LAST.length]}`;
      return `${demoAddress(index)},${name},${index % 4 === 0 ? 'business' : 'home'}`;
    });
    await writeFile(csv, `email,name,plan\n${rows.join('\n')}\n`);
    added = (await importSubscribers(app, { list: DEMO_LIST, file: csv })).membershipsAdded;
  }
  return { list, createdList: existing === null, addedSubscribers: added, activeSubscribers: await countMembers(app.db, list.id, 'active') };
}

function demoAddress(index: number): string {
  const first = (FIRST[index % FIRST.length] as string).toLowerCase();
  const last = (LAST[Math.floor(index / FIRST.length) % LAST.length] as string).toLowerCase();
  return `${first}.${last}${index >= FIRST.length * LAST.length ? index : ''}@${DOMAINS[index % DOMAINS.length]}`;
}

/** What the command shows while the demo runs, and how it runs each send (with its progress display). */
export interface DemoUi {
  ready(setup: DemoSetup): void;
  sending(plan: SendPlan, relay: string): void;
  /** Runs one send; false stops the demo (the send ended badly). */
  send(run: (onStart: NonNullable<RunOptions['onStart']>) => Promise<SendSummary>): Promise<boolean>;
}

export interface DemoResult {
  readonly sent: number;
  readonly outbox: string;
  readonly archive: { readonly bulletins: number; readonly directory: string };
  readonly link: { readonly email: string; readonly url: string } | null;
}

/**
 * Sets up the demo list, sends both demo bulletins into an SMTP capture under `workDir`/outbox and
 * exports the archive to `workDir`/archive. Null when a send stopped the demo.
 */
export async function runDemo(app: App, request: { baseUrl: string; workDir: string; rate: string }, ui: DemoUi): Promise<DemoResult | null> {
  const setup = await setUpDemo(app, { baseUrl: request.baseUrl, workDir: request.workDir });
  ui.ready(setup);
  const capture = await startSmtpCapture(join(request.workDir, 'outbox'));
  const settings = sendSettings(app.config, { rate: request.rate, connections: 5 });
  const transport = await openTransport({ ...app.config, smtpUrl: capture.url }, settings);
  let sent = 0;
  try {
    for (const file of DEMO_BULLETINS) {
      const plan = await prepareSend(app, { file, list: DEMO_LIST });
      ui.sending(plan, transport.description);
      let summary: SendSummary | undefined;
      const goOn = await ui.send(async (onStart) => {
        summary = await runSend(app, plan, runOptions(transport, settings, { resendUncertain: true, waitForDeferred: true, onStart }));
        return summary;
      });
      sent += summary?.thisRun.sent ?? 0;
      if (!goOn) return null;
    }
  } finally {
    await transport.close();
    await capture.close();
  }
  const archive = await exportArchive(app, { slug: DEMO_LIST, outDir: join(request.workDir, 'archive') });
  const [someone] = await selectMembers(app.db, { listId: setup.list.id, status: 'active', limit: 1 });
  const link = someone ? await unsubscribeLinkOf(app, DEMO_LIST, someone.email) : null;
  return {
    sent,
    outbox: capture.directory,
    archive: { bulletins: archive.bulletins, directory: archive.directory },
    link: link ? { email: link.email, url: link.url } : null,
  };
}
