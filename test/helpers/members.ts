// A list with members and a bulletin for it, set up through the CLI as a user would: the list is
// created, the addresses imported (all active), and a bulletin file written in the test's directory.
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { LIST_FLAGS } from './app.js';
import { runOk } from './cli.js';
import type { TestDatabase } from './database.js';

/** `count` addresses `<prefix><n>@example.net`, n from 0. */
export function numberedAddresses(prefix: string, count: number): string[] {
  return Array.from({ length: count }, (_, index) => `${prefix}${index}@example.net`);
}

/** Creates list `slug` with `addresses` as members; returns the path of a bulletin `slug`.md for it. */
export async function listWith(db: TestDatabase, slug: string, addresses: readonly string[], bulletin: { subject: string; body?: string }): Promise<string> {
  await runOk(['list', 'create', slug, ...LIST_FLAGS], db);
  const csv = join(db.cwd, `${slug}.csv`);
  await writeFile(csv, `email\n${addresses.join('\n')}\n`);
  await runOk(['subscribers', 'import', csv, '--list', slug], db);
  const file = join(db.cwd, `${slug}.md`);
  await writeFile(file, `---\nsubject: ${bulletin.subject}\n---\n${bulletin.body ?? 'Hello {{subscriber.email}}.'}\n`);
  return file;
}
