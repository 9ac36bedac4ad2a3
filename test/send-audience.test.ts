// Who gets a bulletin and when: a send's audience (--where, --segment) is frozen when it starts, so
// resume, retry and workers send to exactly those members; `send --at` stores it as scheduled and a
// worker starts it when due (an injected clock), choosing the audience then; unschedule; and two
// real worker processes racing for one scheduled start, which happens once.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, test } from 'node:test';
import { LIST_FLAGS, rows } from './helpers/app.js';
import { runCli, runOk } from './helpers/cli.js';
import { clockAt } from './helpers/clock.js';
import { createTestDatabase, DATABASE_KIND, type TestDatabase } from './helpers/database.js';
import { startSmtpServer, type TestSmtpServer } from './helpers/smtp-servers.js';

const BIN = fileURLToPath(new URL('../bin/bulletin.js', import.meta.url));
const FAST_RETRIES = ['--retry-min', '100ms', '--retry-max', '300ms', '--retry-deadline', '1m'];
let db: TestDatabase;
const servers: TestSmtpServer[] = [];

before(async () => {
  db = await createTestDatabase();
});
after(async () => {
  await Promise.all(servers.map((server) => server.close()));
  await db?.drop();
});

async function relay(behaviour: Parameters<typeof startSmtpServer>[0] = {}): Promise<TestSmtpServer> {
  const server = await startSmtpServer(behaviour);
  servers.push(server);
  return server;
}

/** A list whose members person0…person(n-1) are on platform "mail" (even) or "web" (odd). */
async function listWith(slug: string, count: number): Promise<string[]> {
  await runOk(['list', 'create', slug, ...LIST_FLAGS], db);
  const addresses = Array.from({ length: count }, (_, index) => `person${index}@${slug}.example.net`);
  await importRows(
    slug,
    addresses.map((address, index) => [address, index % 2 === 0 ? 'mail' : 'web']),
  );
  return addresses;
}

async function importRows(slug: string, members: [string, string][]): Promise<void> {
  const csv = join(db.cwd, `${slug}-${Math.random().toString(36).slice(2)}.csv`);
  await writeFile(csv, `email,platform\n${members.map(([address, platform]) => `${address},${platform}`).join('\n')}\n`);
  await runOk(['subscribers', 'import', csv, '--list', slug], db);
}

async function bulletinFile(name: string, subject: string): Promise<string> {
  const path = join(db.cwd, name);
  await writeFile(path, `---\nsubject: ${subject}\n---\nHello {{default subscriber.email "you"}} on {{subscriber.attributes.platform}}.\n`);
  return path;
}

async function deliveredTo(bulletinId: number): Promise<{ email: string; state: string }[]> {
  return rows(db, `SELECT s.email, d.state::text FROM deliveries d JOIN subscribers s ON s.id = d.subscriber_id WHERE d.bulletin_id = $1 ORDER BY s.email`, [
    bulletinId,
  ]);
}

const MAIL = 'attributes.platform = "mail"';

describe(`audiences and scheduled sends (${DATABASE_KIND} database)`, () => {
  test('the audience is frozen at the start: resume, retry and a worker send to exactly those members', async () => {
    const addresses = await listWith('frozen', 6);
    const mail = addresses.filter((_, index) => index % 2 === 0);
    const server = await relay({ deferAfterData: { addresses: [mail[1]!], times: 1 } });
    const env = { ...db, env: { ...db.env, SMTP_URL: server.url } };
    const file = await bulletinFile('frozen.md', 'Mail outage');
    const first = await runCli(['send', file, '--list', 'frozen', '--where', MAIL, '--yes', '--no-wait', '--rate', '100/s', ...FAST_RETRIES], env);
    assert.equal(first.code, 0, first.stderr);
    // The confirmation said how many match and who some of them are.
    assert.match(first.stderr, /recipients: 3 matching active subscribers/);
    assert.match(first.stderr, /audience: {3}where attributes\.platform = "mail"/);
    assert.match(first.stderr, new RegExp(`they include: ${mail.join(', ').replace(/\./g, '\\.')}`));
    const [bulletin] = await rows<{ id: number; audience_filter: string }>(db, 'SELECT id, audience_filter FROM bulletins');
    assert.equal(bulletin!.audience_filter, MAIL);
    assert.deepEqual(await deliveredTo(bulletin!.id), [
      { email: mail[0]!, state: 'sent' },
      { email: mail[1]!, state: 'deferred' },
      { email: mail[2]!, state: 'sent' },
    ]);

    // Meanwhile one member moves to the mail platform and a new one joins it: not this bulletin's audience.
    await importRows('frozen', [
      [addresses[1]!, 'mail'],
      ['newcomer@frozen.example.net', 'mail'],
    ]);
    const otherWhere = await runCli(['send', file, '--list', 'frozen', '--where', 'attributes.platform = "web"', '--yes'], env);
    assert.equal(otherWhere.code, 65);
    assert.match(otherWhere.stderr, /was started from this file for the members matching attributes\.platform = "mail"; it resumes with that audience/);
    const resumed = (await runOk(['resume', String(bulletin!.id), '--json', '--quiet', '--rate', '100/s', ...FAST_RETRIES], env)) as { finished: boolean };
    assert.equal(resumed.finished, true);
    await runOk(['retry', String(bulletin!.id), '--state', 'failed,uncertain', '--json', '--quiet', ...FAST_RETRIES], env);
    assert.equal((await runCli(['worker', '--once', '--json', '--quiet'], env)).code, 0);
    assert.deepEqual(
      (await deliveredTo(bulletin!.id)).map((row) => row.email),
      mail,
      'no delivery was added for members who matched later',
    );
    const received = server.received
      .filter((message) => message.accepted)
      .map((message) => message.envelope.to[0])
      .sort();
    assert.deepEqual(received, mail);

    const status = (await runOk(['status', String(bulletin!.id), '--json'], db)) as { audience: { filter: string | null }; state: string };
    assert.deepEqual(status.audience, { filter: MAIL, segment: null });
    assert.equal(status.state, 'started');
    assert.match(String(await runOk(['status', String(bulletin!.id)], db)), /audience: {3}where attributes\.platform = "mail"/);
  });

  test("send --segment uses the segment's filter, and status names the segment; a filter matching nobody sends nothing", async () => {
    await listWith('segmented', 4);
    await runOk(['segment', 'create', 'web-customers', '--list', 'segmented', '--where', 'attributes.platform = "web"'], db);
    const outbox = join(db.cwd, 'outbox-segmented');
    const file = await bulletinFile('segmented.md', 'Web news');
    const sent = (await runOk(['send', file, '--list', 'segmented', '--segment', 'web-customers', '--outbox', outbox, '--yes', '--json', '--quiet'], db)) as {
      bulletinId: number;
      counts: { sent: number };
    };
    assert.equal(sent.counts.sent, 2);
    assert.equal((await readdir(outbox)).filter((name) => name.endsWith('.eml')).length, 2);
    const status = (await runOk(['status', String(sent.bulletinId), '--json'], db)) as { audience: unknown };
    assert.deepEqual(status.audience, { filter: 'attributes.platform = "web"', segment: 'web-customers' });
    const nobody = await runCli(
      ['send', await bulletinFile('nobody.md', 'Nobody'), '--list', 'segmented', '--where', 'attributes.platform = "fax"', '--outbox', outbox, '--yes'],
      db,
    );
    assert.equal(nobody.code, 65);
    assert.match(nobody.stderr, /The filter matches no active member of "segmented": nothing to send/);
    const dry = (await runOk(
      ['send', await bulletinFile('dry.md', 'Dry'), '--list', 'segmented', '--where', 'attributes.platform = "mail"', '--dry-run', '--json'],
      db,
    )) as { rendered: number };
    assert.equal(dry.rendered, 2, 'a dry run renders the audience only');
  });

  test('send --at stores a scheduled send; a worker starts it when due (injected clock), with the audience of that moment', async () => {
    const addresses = await listWith('scheduled', 4);
    const file = await bulletinFile('scheduled.md', 'Maintenance at nine');
    const outbox = join(db.cwd, 'outbox-scheduled');
    // 09:00 in Adelaide (+10:30) is 22:30 UTC the evening before.
    const before = clockAt('2030-03-01T22:00:00Z');
    const scheduled = (await runOk(['send', file, '--list', 'scheduled', '--where', MAIL, '--at', '2030-03-02T09:00+10:30', '--yes', '--json'], {
      ...db,
      clock: before,
    })) as {
      bulletinId: number;
      state: string;
      scheduledFor: string;
    };
    assert.equal(scheduled.state, 'scheduled');
    assert.equal(scheduled.scheduledFor, '2030-03-01T22:30:00.000Z');
    assert.deepEqual(await deliveredTo(scheduled.bulletinId), [], 'nothing is enqueued before the start');
    const listed = (await runOk(['status', '--json'], { ...db, clock: before })) as {
      scheduled: { bulletinId: number; scheduledFor: string; audience: { filter: string } }[];
    };
    assert.deepEqual(
      listed.scheduled.map((each) => [each.bulletinId, each.scheduledFor, each.audience.filter]),
      [[scheduled.bulletinId, '2030-03-01T22:30:00.000Z', MAIL]],
    );
    assert.match(
      String(await runOk(['status'], { ...db, clock: before })),
      /Scheduled sends:\n +\d+ {2}2030-03-01 22:30:00Z {2}"scheduled": Maintenance at nine/,
    );

    const early = await runCli(['worker', '--once', '--outbox', outbox, '--json'], { ...db, clock: clockAt('2030-03-01T22:29:50Z') });
    assert.equal(early.code, 0, early.stderr);
    assert.deepEqual(await deliveredTo(scheduled.bulletinId), [], 'not started ten seconds early');
    // Between scheduling and the start, one member leaves and one joins: the audience is chosen at the start.
    await runOk(['subscribers', 'remove', addresses[0]!, '--list', 'scheduled'], db);
    await importRows('scheduled', [['late@scheduled.example.net', 'mail']]);

    const due = await runCli(['worker', '--once', '--outbox', outbox, '--json'], { ...db, clock: clockAt('2030-03-01T22:30:01Z') });
    assert.equal(due.code, 0, due.stderr);
    assert.match(due.stderr, new RegExp(`Started scheduled bulletin ${scheduled.bulletinId} \\(due 2030-03-01 22:30:00Z\\)`));
    assert.deepEqual(await deliveredTo(scheduled.bulletinId), [
      { email: 'late@scheduled.example.net', state: 'sent' },
      { email: addresses[2]!, state: 'sent' },
    ]);
    const [stored] = await rows<{ state: string; started_at: Date; sent_date: Date }>(
      db,
      'SELECT state::text, started_at, sent_date FROM bulletins WHERE id = $1',
      [scheduled.bulletinId],
    );
    assert.equal(stored!.state, 'started');
    assert.equal(stored!.sent_date.toISOString(), '2030-03-01T22:30:00.000Z', 'the bulletin is dated for its scheduled time');
    assert.ok(Math.abs(stored!.started_at.getTime() - Date.parse('2030-03-01T22:30:01Z')) < 60_000);
    const again = await runCli(['worker', '--once', '--outbox', outbox, '--json'], { ...db, clock: clockAt('2030-03-01T22:31:00Z') });
    assert.doesNotMatch(again.stderr, /Started scheduled/);
    const unscheduleStarted = await runCli(['unschedule', String(scheduled.bulletinId)], db);
    assert.equal(unscheduleStarted.code, 65);
    assert.match(unscheduleStarted.stderr, /is not scheduled: its send has already started, so it can no longer be unscheduled\./);
  });

  test('--at needs an offset and a future time; unschedule takes a send back before its start', async () => {
    await listWith('unscheduled', 2);
    const file = await bulletinFile('unscheduled.md', 'Never mind');
    const clock = clockAt('2030-05-01T00:00:00Z');
    const noOffset = await runCli(['send', file, '--list', 'unscheduled', '--at', '2030-05-02T09:00', '--yes'], { ...db, clock });
    assert.equal(noOffset.code, 2);
    assert.match(noOffset.stderr, /--at "2030-05-02T09:00" has no offset from UTC; add one \(like 2030-05-02T09:00\+10:30 or 2030-05-02T09:00Z\)/);
    const past = await runCli(['send', file, '--list', 'unscheduled', '--at', '2030-04-30T09:00Z', '--yes'], { ...db, clock });
    assert.equal(past.code, 65);
    assert.match(past.stderr, /--at 2030-04-30T09:00:00.000Z is not in the future/);
    const scheduled = (await runOk(['send', file, '--list', 'unscheduled', '--at', '2030-05-01T06:00-04:00', '--yes', '--json'], { ...db, clock })) as {
      bulletinId: number;
    };
    assert.match(String(await runOk(['unschedule', String(scheduled.bulletinId)], db)), /Unscheduled bulletin \d+ \(Never mind\); it will not be sent\./);
    const twice = await runCli(['unschedule', String(scheduled.bulletinId)], db);
    assert.equal(twice.code, 65);
    assert.match(twice.stderr, /already unscheduled/);
    const idle = await runCli(['worker', '--once', '--outbox', join(db.cwd, 'outbox-unscheduled'), '--json'], {
      ...db,
      clock: clockAt('2030-05-02T00:00:00Z'),
    });
    assert.equal(idle.code, 0, idle.stderr);
    assert.deepEqual(await deliveredTo(scheduled.bulletinId), []);
    const status = (await runOk(['status', String(scheduled.bulletinId), '--json'], db)) as { state: string };
    assert.equal(status.state, 'unscheduled');
    const missing = await runCli(['unschedule', '999999'], db);
    assert.equal(missing.code, 66);
  });
});

interface Child {
  readonly child: ChildProcess;
  readonly exited: Promise<{ code: number | null; stdout: string; stderr: string }>;
  stderr(): string;
}

function worker(env: Record<string, string>): Child {
  const child = spawn(process.execPath, [BIN, 'worker', '--rate', '200/s', '--connections', '3'], {
    env: { ...process.env, ...db.env, ...env },
    cwd: db.cwd,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout?.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  return { child, exited: once(child, 'exit').then(([code]) => ({ code: code as number | null, stdout, stderr })), stderr: () => stderr };
}

async function waitFor(condition: () => Promise<boolean>, what: string, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

test('two worker processes racing for a scheduled start: it starts once, and everyone gets one copy', async () => {
  const addresses = await listWith('race', 40);
  const server = await relay();
  const file = await bulletinFile('race.md', 'Racing');
  const workers = [worker({ SMTP_URL: server.url }), worker({ SMTP_URL: server.url })];
  try {
    // Both idle and looking before the start is due, so both wake for it at the same moment.
    await waitFor(
      async () => workers.every((each) => each.child.exitCode === null && each.stderr().includes('No unfinished sends')),
      'both workers to be idle',
    );
    const at = new Date(Date.now() + 3000).toISOString();
    const scheduled = (await runOk(['send', file, '--list', 'race', '--at', at, '--yes', '--json'], db)) as { bulletinId: number };
    await waitFor(
      async () => (await rows(db, 'SELECT 1 FROM bulletins WHERE id = $1 AND finished_at IS NOT NULL', [scheduled.bulletinId])).length === 1,
      'the scheduled send to finish',
    );
    const starts = workers.map((each) => (each.stderr().match(/Started scheduled bulletin/g) ?? []).length);
    assert.deepEqual(starts.sort(), [0, 1], 'exactly one worker started it');
    const accepted = server.received
      .filter((message) => message.accepted)
      .map((message) => message.envelope.to[0])
      .sort();
    assert.deepEqual(accepted, [...addresses].sort(), 'each member got exactly one copy');
    const states = await rows<{ state: string; count: number }>(
      db,
      `SELECT state::text, count(*)::int AS count FROM deliveries WHERE bulletin_id = $1 GROUP BY state`,
      [scheduled.bulletinId],
    );
    assert.deepEqual(states, [{ state: 'sent', count: addresses.length }]);
  } finally {
    for (const each of workers) each.child.kill('SIGTERM');
    await Promise.all(workers.map((each) => each.exited));
  }
});
