// Opens the test's database for a moment to look at rows the CLI wrote, then closes it again
// (so the test's own process holds no connection while the commands under test run).
import { withApp, type App } from '../../src/app/context.js';
import type { TestDatabase } from './database.js';

export function inspect<T>(db: TestDatabase, look: (app: App) => Promise<T>): Promise<T> {
  return withApp(db.config(), { notice: () => undefined }, look);
}

export async function rows<Row extends object = Record<string, unknown>>(db: TestDatabase, text: string, values: unknown[] = []): Promise<Row[]> {
  return inspect(db, async (app) => (await app.db.query<Row>(text, values)).rows);
}

export const LIST_FLAGS = [
  '--name',
  'ExampleNet-Bulletins',
  '--address',
  'bulletins@lists.example.net',
  '--from',
  'ExampleNet <noreply@example.net>',
  '--base-url',
  'https://lists.example.net',
];
