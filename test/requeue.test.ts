// `bulletin retry` moves only deliveries in a retryable state, and the SQL statement itself says so:
// even asked for every state, it leaves a sent delivery and another worker's claim in `sending`
// where they are (a retry must never re-send what was delivered or pull a message out of flight).
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { DELIVERY_STATES, RETRYABLE_STATES } from '../src/domain/delivery.js';
import { requeueDeliveries } from '../src/store/deliveries.js';
import { inspect, LIST_FLAGS, rows } from './helpers/app.js';
import { runOk } from './helpers/cli.js';
import { createTestDatabase, DATABASE_KIND, type TestDatabase } from './helpers/database.js';

let db: TestDatabase;
before(async () => {
  db = await createTestDatabase();
});
after(async () => {
  await db?.drop();
});

test(`requeueDeliveries moves only ${RETRYABLE_STATES.join(', ')} deliveries, whatever states it is asked for (${DATABASE_KIND} database)`, async () => {
  await runOk(['list', 'create', 'guard', ...LIST_FLAGS], db);
  const addresses = [
    'sent@example.net',
    'flight@example.net',
    'failed@example.net',
    'uncertain@example.net',
    'deferred@example.net',
    'skipped@example.net',
    'cancelled@example.net',
  ];
  const csv = join(db.cwd, 'guard.csv');
  await writeFile(csv, `email\n${addresses.join('\n')}\n`);
  await runOk(['subscribers', 'import', csv, '--list', 'guard'], db);
  const file = join(db.cwd, 'guard.md');
  await writeFile(file, '---\nsubject: Guard\n---\nHello.\n');
  await runOk(['send', file, '--list', 'guard', '--outbox', join(db.cwd, 'outbox'), '--yes', '--quiet'], db);
  const [bulletin] = await rows<{ id: number }>(db, 'SELECT id FROM bulletins');
  const bulletinId = bulletin!.id;
  // Every state a delivery can be in, one each; `flight` is claimed by another, living worker.
  await rows(
    db,
    `UPDATE deliveries d
        SET state = CASE s.email WHEN 'flight@example.net' THEN 'sending' WHEN 'failed@example.net' THEN 'failed'
                    WHEN 'uncertain@example.net' THEN 'uncertain' WHEN 'deferred@example.net' THEN 'deferred'
                    WHEN 'skipped@example.net' THEN 'skipped' WHEN 'cancelled@example.net' THEN 'cancelled' ELSE 'sent' END::delivery_state,
            owner = CASE s.email WHEN 'flight@example.net' THEN 'elsewhere.example.net:4242:abcdef' END,
            lease_until = CASE s.email WHEN 'flight@example.net' THEN now() + interval '1 hour' END
       FROM subscribers s WHERE s.id = d.subscriber_id`,
  );
  const now = new Date('2031-03-01T00:00:00Z');
  const moved = await inspect(db, (app) => requeueDeliveries(app.db, bulletinId, DELIVERY_STATES, now));
  assert.equal(moved, RETRYABLE_STATES.length);
  const after = await rows<{ email: string; state: string; owner: string | null }>(
    db,
    'SELECT s.email, d.state, d.owner FROM deliveries d JOIN subscribers s ON s.id = d.subscriber_id ORDER BY s.email',
  );
  const byEmail = Object.fromEntries(after.map((row) => [row.email, row]));
  assert.equal(byEmail['sent@example.net']!.state, 'sent', 'a sent delivery is never put back');
  assert.equal(byEmail['flight@example.net']!.state, 'sending', "another worker's claim stays in flight");
  assert.equal(byEmail['flight@example.net']!.owner, 'elsewhere.example.net:4242:abcdef');
  assert.equal(byEmail['skipped@example.net']!.state, 'skipped');
  for (const email of ['failed@example.net', 'uncertain@example.net', 'deferred@example.net', 'cancelled@example.net'])
    assert.equal(byEmail[email]!.state, 'deferred', email);
});
