// `bulletin status` of live sends, on the PostgreSQL server or the embedded one: a send running in a
// child process is listed with its process and heartbeat, `--watch` prints a JSON line a second
// (or redraws a terminal) and ends with the send, the operator's pause, pace and cancel show who
// and when, and a database outage while watching is said and ridden out.
// The child's process row is its own heartbeat (the dispatcher's); the silent one is written here.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { after, before, describe, test } from 'node:test';
import { main } from '../src/cli/main.js';
import { formatDate } from '../src/cli/output.js';
import { cancelBulletin } from '../src/store/bulletins.js';
import { cancelUnsentDeliveries } from '../src/store/deliveries.js';
import { pauseSend, setSendRate, unpauseSend } from '../src/store/send-pacing.js';
import { beatAndReadControl, leaveSend } from '../src/store/send-processes.js';
import { inspect, rows } from './helpers/app.js';
import { childEnv, runCli, runOk } from './helpers/cli.js';
import { clockAt } from './helpers/clock.js';
import { createTestDatabase, DATABASE_KIND, type TestDatabase } from './helpers/database.js';
import { startDatabaseProxy } from './helpers/db-proxy.js';
import { listWith, numberedAddresses } from './helpers/members.js';
import { startSmtpServer, type TestSmtpServer } from './helpers/smtp-servers.js';
import { waitFor } from './helpers/wait.js';

const BIN = fileURLToPath(new URL('../bin/bulletin.js', import.meta.url));
const OPS = 'ops@host-a';

let db: TestDatabase;
let relay: TestSmtpServer;
const cleanups: (() => Promise<unknown>)[] = [];

before(async () => {
  db = await createTestDatabase();
  // Embedded: hold the server up for the whole file, so this process's many short looks never stop
  // it while a child `bulletin` is starting it (the last process out stops it).
  await db.url();
  relay = await startSmtpServer();
});
after(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup();
  await relay?.close();
  await db?.drop();
});

interface Child {
  readonly child: ChildProcess;
  /** stdout so far, split into lines as they come. */
  readonly lines: string[];
  readonly exited: Promise<{ code: number | null; signal: string | null; stdout: string; stderr: string }>;
}

function bulletin(args: readonly string[], env: Record<string, string> = db.env): Child {
  const child = spawn(process.execPath, [BIN, ...args], { env: childEnv(env, { SMTP_URL: relay.url }), cwd: db.cwd, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  const lines: string[] = [];
  let partial = '';
  child.stdout?.on('data', (chunk: Buffer) => {
    stdout += chunk.toString();
    const parts = (partial + chunk.toString()).split('\n');
    partial = parts.pop() ?? '';
    lines.push(...parts);
  });
  child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = once(child, 'exit').then(([code, signal]) => ({ code: code as number | null, signal: signal as string | null, stdout, stderr }));
  cleanups.push(async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await exited;
  });
  return { child, lines, exited };
}

async function bulletinIdOf(subject: string): Promise<number> {
  await waitFor(async () => (await rows(db, 'SELECT 1 FROM bulletins WHERE subject = $1', [subject])).length > 0, `bulletin "${subject}" to be stored`);
  return (await rows<{ id: number }>(db, 'SELECT id FROM bulletins WHERE subject = $1', [subject]))[0]!.id;
}

async function sentCount(bulletinId: number): Promise<number> {
  return (await rows<{ n: number }>(db, `SELECT count(*)::int AS n FROM deliveries WHERE bulletin_id = $1 AND state = 'sent'`, [bulletinId]))[0]!.n;
}

interface ProcessJson {
  host: string;
  pid: number;
  command: string;
  startedAt: string;
  secondsSinceHeartbeat: number;
  silent: boolean;
  pace: number | null;
  sent: number;
  paused: boolean;
}

interface StatusJson {
  at: string;
  bulletinId: number;
  subject: string;
  state: string;
  done: boolean;
  createdAt: string;
  finishedAt: string | null;
  counts: Record<string, number>;
  total: number;
  open: number;
  rate: number;
  etaSeconds: number | null;
  etaBasis: string | null;
  pace: number | null;
  control: {
    paused: { since: string; by: string | null } | null;
    rate: { perSecond: number; by: string | null; at: string | null } | null;
    cancelled: { at: string; by: string | null } | null;
  };
  processes: ProcessJson[];
}

interface LiveJson {
  at: string;
  sends: StatusJson[];
  scheduled: unknown[];
  latest: StatusJson | null;
}

/** Runs `bulletin <args>` in-process with a stdout that says it is a terminal. */
async function runOnTerminal(args: readonly string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const stdout = Object.assign(new PassThrough(), { isTTY: true });
  const stderr = new PassThrough();
  let out = '';
  let err = '';
  stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
  stderr.on('data', (chunk: Buffer) => (err += chunk.toString()));
  const code = await main(['node', 'bulletin', ...args], { stdout, stderr, stdin: Readable.from(['']), env: db.env, cwd: db.cwd });
  return { code, stdout: out, stderr: err };
}

describe(`bulletin status of live sends (${DATABASE_KIND} database)`, () => {
  test('a send running in a child process is listed among the unfinished sends with its process, heartbeat and pace; a silent process is shown as such', async () => {
    const file = await listWith(db, 'live', numberedAddresses('live', 30), { subject: 'Outage update 3' });
    const send = bulletin(['send', file, '--list', 'live', '--yes', '--quiet', '--json', '--rate', '5/s']);
    const id = await bulletinIdOf('Outage update 3');
    const pid = send.child.pid as number;
    // A worker on another machine that stopped beating half a minute ago.
    const gone = `host-b:977:gone`;
    await inspect(db, async (app) => {
      await beatAndReadControl(app.db, {
        owner: gone,
        bulletinId: id,
        host: 'host-b',
        pid: 977,
        command: 'worker',
        pace: 5,
        paceNote: null,
        sent: 3,
        paused: false,
      });
      await app.db.query(`UPDATE send_processes SET heartbeat_at = now() - interval '30 seconds' WHERE owner = $1`, [gone]);
    });
    await waitFor(async () => (await sentCount(id)) >= 2, 'the child to send two messages');
    await waitFor(
      async () => (await rows(db, 'SELECT 1 FROM send_processes WHERE bulletin_id = $1 AND pid = $2', [id, pid])).length > 0,
      "the child's heartbeat",
    );

    const live = (await runOk(['status', '--json'], { ...db, clock: clockAt('2031-01-02T03:04:05Z') })) as LiveJson;
    assert.ok(live.at.startsWith('2031-01-02T03:04:0'), `read at the injected clock's time: ${live.at}`);
    assert.deepEqual(
      live.sends.map((each) => each.bulletinId),
      [id],
      'the running send is the one unfinished send',
    );
    assert.equal(live.latest, null, 'no "latest" while a send is unfinished');
    const status = live.sends[0]!;
    assert.equal(status.state, 'started');
    assert.equal(status.done, false);
    assert.equal(status.total, 30);
    assert.ok(status.counts.sent! >= 2 && status.open > 0 && status.open <= 28, JSON.stringify(status.counts));
    const mine = status.processes.find((each) => each.pid === pid);
    assert.ok(mine, `the child (pid ${pid}) among ${JSON.stringify(status.processes)}`);
    assert.equal(mine.host, hostname());
    assert.equal(mine.command, 'send');
    assert.equal(mine.silent, false);
    assert.ok(mine.secondsSinceHeartbeat < 5, `heartbeat ${mine.secondsSinceHeartbeat} s ago`);
    assert.equal(mine.pace, 5);
    const silent = status.processes.find((each) => each.pid === 977);
    assert.ok(silent, 'the worker that stopped beating is still listed');
    assert.equal(silent.host, 'host-b');
    assert.equal(silent.silent, true);
    assert.ok(silent.secondsSinceHeartbeat >= 29, `silent for ${silent.secondsSinceHeartbeat} s`);
    // In its first minute the ETA goes by the pace (5/s; the silent worker's does not count).
    assert.ok(status.rate > 0, `in its first seconds the rate is over the time it has been sending: ${status.rate}/s`);
    assert.equal(status.pace, 5);
    assert.equal(status.etaBasis, 'pace');
    assert.equal(status.etaSeconds, Math.ceil(status.open / 5));
    assert.equal(status.control.paused, null);
    assert.equal(status.control.rate, null);
    assert.equal(status.control.cancelled, null);

    const text = String(await runOk(['status'], db));
    assert.match(text, new RegExp(`^Bulletin ${id} to "live": Outage update 3\n  started ${escape(formatDate(new Date(status.createdAt)))}, not finished\n`));
    assert.match(text, /\n {2}pace: 5\.0\/s, each process's own --rate/);
    assert.match(text, /\n {2}\d+ queued, \d+ sending, \d+ sent, 0 deferred, 0 failed, 0 skipped, 0 uncertain, 0 cancelled \(of 30\)\n/);
    assert.match(text, /rate over the last minute: \d+\.\d\/s, ETA \d+s \(at the pace\)/);
    assert.match(text, /\n {2}processes:\n/);
    assert.match(
      text,
      new RegExp(
        `\n {4}${escape(hostname())} +pid ${pid} +send +since ${escape(formatDate(new Date(mine.startedAt)))} +heartbeat \\d+\\.\\d s ago +pace 5\\.0/s +sent \\d+`,
      ),
    );
    assert.match(text, /\n {4}host-b +pid 977 +worker +since \S+ \S+ +silent \d+ s \(stopped or cut off\?\) +pace 5\.0\/s +sent 3/);

    const sent = await send.exited;
    assert.equal(sent.code, 0, sent.stderr);
    assert.deepEqual(await rows(db, 'SELECT 1 FROM send_processes WHERE pid = $1', [pid]), [], 'the child left the send when it ended');
    await inspect(db, (app) => leaveSend(app.db, gone, id));
    const afterwards = (await runOk(['status', '--json'], db)) as LiveJson;
    assert.deepEqual(afterwards.sends, [], 'no send is unfinished any more');
    assert.equal(afterwards.latest?.bulletinId, id, 'the latest bulletin instead');
    assert.equal(afterwards.latest?.done, true);
    assert.equal(afterwards.latest?.counts.sent, 30);
    assert.deepEqual(afterwards.latest?.processes, [], 'the processes left the send');
  });

  test('status --watch <id> not on a terminal prints one JSON line a second and ends, exit 0, when the send is done', { timeout: 120_000 }, async () => {
    const file = await listWith(db, 'watched', numberedAddresses('watched', 12), { subject: 'Watched send' });
    const send = bulletin(['send', file, '--list', 'watched', '--yes', '--quiet', '--json', '--rate', '4/s']);
    const id = await bulletinIdOf('Watched send');
    const watched = await runCli(['status', String(id), '--watch'], db);
    assert.equal(watched.code, 0, watched.stderr);
    const sent = await send.exited;
    assert.equal(sent.code, 0, sent.stderr);
    assert.ok(watched.stdout.endsWith('\n'));
    const lines = watched.stdout.trimEnd().split('\n');
    assert.ok(lines.length >= 2, `several lines while it ran: ${watched.stdout}`);
    const shown = lines.map((line) => JSON.parse(line) as StatusJson);
    for (const each of shown) assert.equal(each.bulletinId, id);
    assert.equal(shown[0]!.done, false, 'the first line is of the send still running');
    assert.deepEqual(
      shown.map((each) => each.done),
      [...shown.slice(1).map(() => false), true],
      'only the last line is of the send done',
    );
    const last = shown.at(-1)!;
    assert.equal(last.counts.sent, 12);
    assert.notEqual(last.finishedAt, null);
    for (let index = 1; index < shown.length; index++) {
      const gap = Date.parse(shown[index]!.at) - Date.parse(shown[index - 1]!.at);
      assert.ok(gap >= 900, `line ${index} came ${gap} ms after the one before: about a second apart`);
      assert.ok(shown[index]!.counts.sent! >= shown[index - 1]!.counts.sent!, 'the sent count never goes back');
    }
  });

  test(
    "pause, pace and cancel show who and when; no ETA while paused; a cancelled send's deliveries are listed as cancelled",
    { timeout: 120_000 },
    async () => {
      const file = await listWith(db, 'control', numberedAddresses('control', 20), { subject: 'Controlled send' });
      const send = bulletin(['send', file, '--list', 'control', '--yes', '--quiet', '--json', '--rate', '2/s']);
      const id = await bulletinIdOf('Controlled send');
      await waitFor(async () => (await sentCount(id)) >= 2, 'two messages sent');
      send.child.kill('SIGTERM');
      const stopped = await send.exited;
      assert.equal(stopped.code, 143, stopped.stderr);

      const paused = await inspect(db, async (app) => {
        await setSendRate(app.db, id, 20, OPS);
        return pauseSend(app.db, id, OPS);
      });
      assert.equal(paused.already, false);
      const status = (await runOk(['status', String(id), '--json'], db)) as StatusJson;
      assert.equal(status.state, 'started');
      assert.deepEqual(status.control.paused, { since: paused.pausedAt.toISOString(), by: OPS });
      assert.equal(status.control.rate?.perSecond, 20);
      assert.equal(status.control.rate?.by, OPS);
      assert.ok(status.control.rate?.at);
      assert.equal(status.pace, 20, 'the pace set by `bulletin pace`');
      assert.ok(status.open > 0);
      assert.equal(status.etaSeconds, null, 'no ETA while paused');
      assert.deepEqual(status.processes, []);
      const text = String(await runOk(['status', String(id)], db));
      assert.match(text, new RegExp(`not finished — paused since ${escape(formatDate(paused.pausedAt))} by ops@host-a \\(bulletin unpause ${id}\\)\n`));
      assert.match(
        text,
        new RegExp(
          `\n {2}pace: 20/s set by ops@host-a at ${escape(formatDate(new Date(status.control.rate.at)))} \\(bulletin pace ${id} <rate> changes it\\)\n`,
        ),
      );
      assert.match(text, /rate over the last minute: \d+\.\d\/s, no ETA while paused\n/);
      assert.match(text, new RegExp(`\n {2}processes: none \\(nothing is sending it; bulletin resume ${id} or a bulletin worker carries it on\\)`));
      const live = (await runOk(['status', '--json'], db)) as LiveJson;
      assert.deepEqual(
        live.sends.map((each) => [each.bulletinId, each.control.paused?.by]),
        [[id, OPS]],
      );

      await inspect(db, (app) => unpauseSend(app.db, id));
      const unpaused = (await runOk(['status', String(id), '--json'], db)) as StatusJson;
      assert.equal(unpaused.control.paused, null);
      assert.equal(unpaused.etaBasis, 'pace', 'within its first minute the ETA goes by the pace');
      assert.equal(unpaused.etaSeconds, Math.ceil(unpaused.open / 20));

      const cancelled = await inspect(db, async (app) => {
        const bulletin = await cancelBulletin(app.db, id, OPS);
        return { bulletin, count: await cancelUnsentDeliveries(app.db, id, 'cancelled by ops@host-a') };
      });
      assert.ok(cancelled.bulletin?.cancelledAt);
      assert.equal(cancelled.count, unpaused.open, 'every open delivery is cancelled (none was in flight)');
      const gone = (await runOk(['status', String(id), '--json'], db)) as StatusJson;
      assert.equal(gone.state, 'cancelled');
      assert.deepEqual(gone.control.cancelled, { at: cancelled.bulletin.cancelledAt.toISOString(), by: OPS });
      assert.equal(gone.counts.cancelled, cancelled.count);
      assert.equal(gone.counts.sent! + gone.counts.cancelled!, 20);
      assert.equal(gone.open, 0);
      assert.equal(gone.done, true);
      const goneText = String(await runOk(['status', String(id)], db));
      assert.match(
        goneText,
        new RegExp(
          `\n {2}cancelled ${escape(formatDate(cancelled.bulletin.cancelledAt))} by ops@host-a: ${cancelled.count} not sent \\(bulletin retry ${id} --state cancelled sends them\\)\n`,
        ),
      );
      assert.match(goneText, new RegExp(`, 0 uncertain, ${cancelled.count} cancelled \\(of 20\\)\n`));
      assert.doesNotMatch(goneText, /pace:/, 'no pace line for a send that no longer goes');
      const listed = (await runOk(['status', '--json'], db)) as LiveJson;
      assert.ok(!listed.sends.some((each) => each.bulletinId === id), 'a cancelled send is no longer among the unfinished sends');

      const deliveries = (await runOk(['deliveries', String(id), '--state', 'cancelled', '--json'], db)) as {
        email: string;
        state: string;
        lastReply: string;
      }[];
      assert.equal(deliveries.length, cancelled.count);
      for (const each of deliveries) {
        assert.equal(each.state, 'cancelled');
        assert.equal(each.lastReply, 'cancelled by ops@host-a');
      }
      const table = String(await runOk(['deliveries', String(id), '--state', 'cancelled'], db));
      assert.match(table, /control\d+@example\.net +cancelled +\d+ +cancelled by ops@host-a/);

      // On a terminal --watch draws the screen; the send is done, so it shows it once and exits 0.
      const drawn = await runOnTerminal(['status', String(id), '--watch']);
      assert.equal(drawn.code, 0, drawn.stderr);
      assert.ok(drawn.stdout.startsWith('\x1b[2J\x1b[H'), JSON.stringify(drawn.stdout.slice(0, 20)));
      assert.equal(drawn.stdout.split('\x1b[2J\x1b[H').length, 2, 'one screen');
      assert.match(
        drawn.stdout,
        new RegExp(`bulletin status ${id} at \\S+ \\S+ \\(Ctrl-C to stop\\)\n\nBulletin ${id} to "control": Controlled send\n {2}cancelled `),
      );
    },
  );

  test('status --watch says when the database is unreachable and keeps watching; SIGTERM ends it (exit 0)', { timeout: 120_000 }, async () => {
    const file = await listWith(db, 'outage', numberedAddresses('outage', 3), { subject: 'Watched through an outage' });
    await runOk(['send', file, '--list', 'outage', '--yes', '--quiet', '--outbox', join(db.cwd, 'outbox-outage')], db);
    const proxy = await startDatabaseProxy(await db.url());
    cleanups.push(() => proxy.close());
    const watch = bulletin(['status', '--watch'], { DATABASE_URL: proxy.url });
    const parsed = () => watch.lines.map((line) => JSON.parse(line) as Partial<LiveJson> & { databaseUnreachable?: { since: string; error: string } });
    await waitFor(() => parsed().length >= 2, 'two lines while the database answers');
    assert.equal(parsed()[0]!.latest?.subject, 'Watched through an outage', 'no send is unfinished: the latest bulletin');
    await proxy.cut('refuse');
    const cutAt = watch.lines.length;
    await waitFor(
      () =>
        parsed()
          .slice(cutAt)
          .filter((line) => line.databaseUnreachable).length >= 2,
      'two lines saying the database is unreachable',
    );
    const down = parsed()
      .slice(cutAt)
      .filter((line) => line.databaseUnreachable);
    assert.match(down[0]!.databaseUnreachable!.error, /ECONNREFUSED|Connection terminated|terminat|closed/i);
    assert.equal(down[1]!.databaseUnreachable!.since, down[0]!.databaseUnreachable!.since, 'the same outage');
    assert.ok(watch.child.exitCode === null, 'still watching');
    await proxy.restore();
    const restoredAt = watch.lines.length;
    await waitFor(
      () =>
        parsed()
          .slice(restoredAt)
          .some((line) => line.latest !== undefined),
      'a line with the status once the database is back',
    );
    // A database that takes connections and never answers: the beats go on saying so, not waiting for it.
    await proxy.cut('hang');
    const hungAt = watch.lines.length;
    await waitFor(
      () =>
        parsed()
          .slice(hungAt)
          .filter((line) => line.databaseUnreachable?.error === 'the database does not answer').length >= 2,
      'two beats saying the database does not answer',
    );
    await proxy.restore();
    const answeringAt = watch.lines.length;
    await waitFor(
      () =>
        parsed()
          .slice(answeringAt)
          .some((line) => line.latest !== undefined),
      'a line with the status once it answers again',
    );
    watch.child.kill('SIGTERM');
    const ended = await watch.exited;
    assert.equal(ended.code, 0, ended.stderr);
    assert.equal(ended.signal, null);
  });

  test('status --watch ends on SIGTERM within seconds while the database holds a statement unanswered (exit 0)', { timeout: 120_000 }, async () => {
    const proxy = await startDatabaseProxy(await db.url());
    let release: () => void = () => undefined;
    const held = new Promise<void>((resolve) => (release = resolve));
    cleanups.push(async () => {
      release();
      await proxy.close();
    });
    const watch = bulletin(['status', '--watch'], { DATABASE_URL: proxy.url });
    const parsed = () => watch.lines.map((line) => JSON.parse(line) as Partial<LiveJson> & { databaseUnreachable?: { error: string } });
    await waitFor(() => parsed().length >= 2, 'two lines while the database answers');
    // The next read's statement reaches a server that never answers it (the connection stays open).
    void proxy.faultOn({ text: 'bulletins', hold: () => held });
    await waitFor(
      () => parsed().some((line) => line.databaseUnreachable?.error === 'the database does not answer'),
      'a beat saying the database does not answer',
    );
    const signalledAt = Date.now();
    watch.child.kill('SIGTERM');
    const ended = await Promise.race([watch.exited, new Promise<null>((resolve) => setTimeout(() => resolve(null), 30_000))]);
    assert.ok(ended, 'status --watch ended within 30 s of SIGTERM (it waited for the unanswered statement)');
    assert.equal(ended.code, 0, ended.stderr);
    assert.ok(Date.now() - signalledAt < 15_000, `it ended ${Date.now() - signalledAt} ms after SIGTERM`);
  });
});

test('status --help explains --watch, its JSON lines and its end, with examples', async () => {
  const help = await runCli(['status', '--help'], db);
  assert.equal(help.code, 0, help.stderr);
  assert.match(help.stdout, /--watch +show it again every second/);
  assert.match(help.stdout, /"databaseUnreachable"/);
  assert.match(help.stdout, /until that send is done/);
  assert.match(help.stdout, /Examples:\n {2}bulletin status\n {2}bulletin status 7 --json\n {2}bulletin status --watch\n/);
});

function escape(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
