// `bulletin demo`: what a new user sees first. A demo list with a few hundred made-up subscribers
// (example.net addresses) in whatever database is configured, and the two sample bulletins of
// templates/demo/ (a notice and its follow-up) to send through the real engine.
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { MailingList } from '../domain/list.js';
import { countMembers, findMember } from '../store/memberships.js';
import { findListBySlug } from '../store/lists.js';
import type { App } from './context.js';
import { importSubscribers } from './import-subscribers.js';
import { createList, updateList } from './lists.js';

export const DEMO_LIST = 'demo';
export const DEMO_SUBSCRIBERS = 300;
/** The notice, then its follow-up (which names the notice in `in-reply-to`). */
export const DEMO_BULLETINS = ['maintenance.md', 'maintenance-done.md'].map((name) => fileURLToPath(new URL(`../../templates/demo/${name}`, import.meta.url)));

const FIRST = ['Ada', 'Alan', 'Barbara', 'Claude', 'Dennis', 'Edsger', 'Frances', 'Grace', 'Hedy', 'Ivan', 'Joan', 'Ken', 'Leslie', 'Margaret', 'Niklaus', 'Radia', 'Sophie', 'Tim', 'Vint', 'Whitfield'];
const LAST = ['Lovelace', 'Turing', 'Liskov', 'Shannon', 'Ritchie', 'Dijkstra', 'Allen', 'Hopper', 'Lamarr', 'Sutherland', 'Clarke', 'Thompson', 'Lamport', 'Hamilton', 'Wirth', 'Perlman', 'Wilson', 'Berners-Lee', 'Cerf', 'Diffie'];
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
