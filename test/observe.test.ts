// What the people on call see: /metrics of a running send and of a worker (scraped and parsed,
// checked against what the SMTP server saw), the JSON log of a send (with and without --verbose),
// and serve --metrics after a one-click unsubscribe, and inbound --metrics-port after mail of each kind.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { after, before, describe, test } from 'node:test';
import nodemailer from 'nodemailer';
import { LIST_FLAGS } from './helpers/app.js';
import { childEnv, runOk, startCli } from './helpers/cli.js';
import { startDatabaseProxy } from './helpers/db-proxy.js';
import { createTestDatabase, DATABASE_KIND, type TestDatabase } from './helpers/database.js';
import { listWith, numberedAddresses } from './helpers/members.js';
import { scrape, type Scrape } from './helpers/prometheus.js';
import { startSmtpServer, type TestSmtpServer } from './helpers/smtp-servers.js';
import { waitFor } from './helpers/wait.js';

const BIN = fileURLToPath(new URL('../bin/bulletin.js', import.meta.url));
const FAST_RETRIES = ['--retry-min', '100ms', '--retry-max', '300ms', '--retry-deadline', '1m'];

let db: TestDatabase;
const servers: TestSmtpServer[] = [];
const children: ChildProcess[] = [];
before(async () => {
  db = await createTestDatabase();
});
after(async () => {
  for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  await Promise.all(servers.map((server) => server.close()));
  await db?.drop();
});

async function relay(behaviour: Parameters<typeof startSmtpServer>[0] = {}): Promise<TestSmtpServer> {
  const server = await startSmtpServer(behaviour);
  servers.push(server);
  return server;
}

function jsonLines(text: string): Record<string, unknown>[] {
  return text
    .split('\n')
    .filter((line) => line !== '')
    .map((line) => {
      try {
        return JSON.parse(line) as Record<string, unknown>;
      } catch {
        throw new Error(`a stderr line is not JSON: ${line}`);
      }
    });
}

/** A bulletin process of its own (the worker and the server run until a signal). */
function spawnBulletin(args: readonly string[], env: Record<string, string>) {
  const child = spawn(process.execPath, [BIN, ...args], { cwd: db.cwd, env: childEnv(env), stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  let stdout = '';
  let stderr = '';
  child.stdout?.on('data', (chunk: Buffer) => (stdout += chunk.toString('utf8')));
  child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return { child, stdout: () => stdout, stderr: () => stderr, exited };
}

describe(`metrics and logs (${DATABASE_KIND} database)`, () => {
  test('send --metrics-port 0: /metrics while it runs shows the pace set, the queue by state, and no more sent than the relay took', async () => {
    const recipients = 12;
    const file = await listWith(db, 'metrics-send', numberedAddresses('m', recipients), { subject: 'Metrics while sending' });
    const server = await relay();
    const running = startCli(['send', file, '--list', 'metrics-send', '--yes', '--json', '--rate', '4/s', '--connections', '2', '--metrics-port', '0'], {
      ...db,
      env: { ...db.env, SMTP_URL: server.url },
    });
    let url = '';
    await waitFor(() => {
      url = /Metrics at (http:\/\/127\.0\.0\.1:\d+\/metrics)\n/.exec(running.stderr())?.[1] ?? '';
      return url !== '';
    }, 'the metrics address on stderr');
    const notFound = await fetch(url.replace(/\/metrics$/, '/other'));
    assert.equal(notFound.status, 404);
    await notFound.text();
    // Scrape until the send has started and sent some, but not all (4/s: about 3 s for 12).
    let during: Scrape | null = null;
    let acceptedAfter = 0;
    await waitFor(async () => {
      const scraped = await scrape(url);
      acceptedAfter = server.received.filter((message) => message.accepted).length;
      const sent = scraped.value('bulletin_deliveries_total', { outcome: 'sent' }) ?? 0;
      if (scraped.select('bulletin_queue_deliveries').length > 0 && sent > 0 && sent < recipients) during = scraped;
      return during !== null;
    }, 'a scrape in the middle of the send');
    const summary = JSON.parse((await running.done).stdout) as { bulletinId: number; counts: Record<string, number> };
    assert.equal(summary.counts.sent, recipients);
    const scraped = during as unknown as Scrape;
    const bulletin = String(summary.bulletinId);
    assert.equal(scraped.types.get('bulletin_deliveries_total'), 'counter');
    assert.equal(scraped.types.get('bulletin_queue_deliveries'), 'gauge');
    assert.equal(scraped.value('bulletin_pace_messages_per_second', { bulletin }), 4, 'the pace gauge is the rate set');
    assert.deepEqual(
      scraped.select('bulletin_pace_cause', { bulletin }).map((sample) => [sample.labels.cause, sample.value]),
      [['configured', 1]],
    );
    assert.equal(scraped.sum('bulletin_queue_deliveries', { bulletin }), recipients, 'the queue by state adds up to the recipients');
    const sent = scraped.value('bulletin_deliveries_total', { outcome: 'sent' }) as number;
    assert.ok(sent <= acceptedAfter, `${sent} counted sent, the relay had accepted ${acceptedAfter}`);
    assert.ok((scraped.value('bulletin_queue_deliveries', { bulletin, state: 'sent' }) as number) <= sent, 'no more recorded sent than counted');
    assert.equal(scraped.value('bulletin_smtp_replies_total', { class: '2xx' }), sent);
    assert.equal(scraped.value('bulletin_smtp_replies_total', { class: '4xx' }), 0);
    assert.equal(scraped.value('bulletin_database_up'), 1);
    assert.equal(scraped.value('bulletin_relay_up', { relay: `smtp://127.0.0.1:${server.port}` }), 1);
    assert.equal(scraped.value('bulletin_paused', { bulletin }), 0);
  });

  test('worker --metrics-port 0: after the send, deliveries, replies by class and attempts match what the relay saw', async () => {
    const deferredOnce = numberedAddresses('w-again', 6);
    const straight = numberedAddresses('w-straight', 4);
    const file = await listWith(db, 'metrics-worker', [...deferredOnce, ...straight], { subject: 'Metrics of a worker' });
    // The send's first attempts all go to a relay that defers every one (it stops: --no-wait, the
    // retries not due yet); the worker goes on through one that defers `deferredOnce` once.
    const stubborn = await relay({ deferAfterData: { addresses: [...deferredOnce, ...straight], times: 1_000_000 } });
    const server = await relay({ deferAfterData: { addresses: deferredOnce, times: 1 } });
    const first = (await runOk(['send', file, '--list', 'metrics-worker', '--yes', '--json', '--no-wait', '--retry-min', '2s', '--retry-max', '3s'], {
      ...db,
      env: { ...db.env, SMTP_URL: stubborn.url },
    })) as { bulletinId: number; counts: Record<string, number> };
    assert.equal(first.counts.deferred, 10);
    const worker = spawnBulletin(['worker', '--list', 'metrics-worker', '--rate', '5/s', ...FAST_RETRIES, '--metrics-port', '0', '--log-format', 'json'], {
      ...db.env,
      SMTP_URL: server.url,
    });
    let url = '';
    await waitFor(() => {
      const line = jsonLines(worker.stderr()).find((entry) => entry.event === 'metrics listening');
      url = typeof line?.url === 'string' ? line.url : '';
      return url !== '';
    }, 'the metrics line of the worker');
    await waitFor(
      async () => ((await runOk(['status', String(first.bulletinId), '--json'], db)) as { counts: Record<string, number> }).counts.sent === 10,
      'the worker to send everything',
    );
    const scraped = await scrape(url);
    const bulletin = String(first.bulletinId);
    const accepted = server.received.filter((message) => message.accepted).length;
    const deferred = server.received.filter((message) => message.disposition === 'deferred').length;
    assert.deepEqual({ accepted, deferred }, { accepted: 10, deferred: 6 }, 'the relay took all ten, after deferring six of them once');
    assert.equal(scraped.value('bulletin_deliveries_total', { outcome: 'sent' }), accepted);
    assert.equal(scraped.value('bulletin_deliveries_total', { outcome: 'deferred' }), deferred);
    assert.equal(scraped.value('bulletin_deliveries_total', { outcome: 'failed' }), 0);
    assert.equal(scraped.value('bulletin_smtp_replies_total', { class: '2xx' }), accepted);
    assert.equal(scraped.value('bulletin_smtp_replies_total', { class: '4xx' }), deferred);
    assert.equal(scraped.value('bulletin_smtp_replies_total', { class: '5xx' }), 0);
    assert.equal(scraped.value('bulletin_attempts_total'), accepted + deferred);
    assert.equal(scraped.value('bulletin_queue_deliveries', { bulletin, state: 'sent' }), 10);
    assert.equal(scraped.sum('bulletin_queue_deliveries', { bulletin }), 10);
    const paceChanges = jsonLines(worker.stderr()).filter((entry) => entry.event === 'pace changed' && entry.bulletinId === first.bulletinId);
    const pace = paceChanges.length > 0 ? (paceChanges.at(-1)?.rate as number) : 5;
    assert.equal(scraped.value('bulletin_pace_messages_per_second', { bulletin }), pace, 'the pace gauge is the pace now');
    worker.child.kill('SIGTERM');
    await worker.exited;
    const lines = jsonLines(worker.stderr());
    for (const line of lines) assert.equal(typeof line.host, 'string', `host on ${JSON.stringify(line)}`);
    const started = lines.filter((line) => line.event === 'send started');
    assert.ok(started.length >= 1 && started.every((line) => line.bulletinId === first.bulletinId));
    assert.equal(lines.filter((line) => line.event === 'send finished' && line.bulletinId === first.bulletinId).length, 1);
  });

  test('--log-format json: every stderr line is JSON with host and bulletin id; per-message lines only with --verbose', async () => {
    const recipients = 5;
    const file = await listWith(db, 'log-json', numberedAddresses('l', recipients), { subject: 'JSON log' });
    const server = await relay({ deferAfterData: { addresses: ['l1@example.net'], times: 1 } });
    const env = { ...db.env, SMTP_URL: server.url };
    const quiet = await startCli(['send', file, '--list', 'log-json', '--yes', '--no-wait', '--log-format', 'json', '--retry-min', '1s', '--retry-max', '2s'], {
      ...db,
      env,
    }).done;
    assert.equal(quiet.code, 0, quiet.stderr);
    assert.match(quiet.stdout, /this run: 4 sent, 1 deferred/, 'the summary still goes to stdout');
    const lines = jsonLines(quiet.stderr);
    const bulletinId = lines[0]?.bulletinId;
    assert.equal(typeof bulletinId, 'number');
    for (const line of lines) {
      assert.equal(typeof line.host, 'string');
      assert.equal(line.bulletinId, bulletinId, `bulletin id on ${JSON.stringify(line)}`);
    }
    assert.deepEqual(
      lines.map((line) => line.event),
      ['send started', 'send ended'],
    );
    assert.equal(lines[0]?.total, recipients);
    assert.deepEqual([lines[1]?.end, lines[1]?.sent, lines[1]?.deferred], ['waiting for deferred', 4, 1]);

    // Resumed with --verbose (it waits for the deferred one to be due): one line per message, then the end.
    const verbose = await startCli(['resume', String(bulletinId), '--log-format', 'json', '--verbose', ...FAST_RETRIES], { ...db, env }).done;
    assert.equal(verbose.code, 0, verbose.stderr);
    const resumed = jsonLines(verbose.stderr);
    for (const line of resumed) assert.equal(line.bulletinId, bulletinId);
    assert.deepEqual(
      resumed.map((line) => line.event),
      ['send started', 'attempt', 'send finished'],
    );
    assert.deepEqual([resumed[1]?.email, resumed[1]?.state, resumed[1]?.replyClass], ['l1@example.net', 'sent', '2xx']);

    // A command that fails ends with the same sentence and status, as a JSON line.
    const human = await startCli(['resume', '999999'], { ...db, env }).done;
    const json = await startCli(['resume', '999999', '--log-format', 'json'], { ...db, env }).done;
    assert.notEqual(human.code, 0);
    assert.equal(json.code, human.code);
    const [failed, ...more] = jsonLines(json.stderr);
    assert.deepEqual(more, []);
    assert.deepEqual([failed?.event, failed?.level, `bulletin: ${String(failed?.msg)}\n`], ['command failed', 'error', human.stderr]);
  });

  test('a relay that says we go too fast: the log says the pace changed, why, and to what', async () => {
    const recipients = 40;
    const file = await listWith(db, 'pace-log', numberedAddresses('p', recipients), { subject: 'Pace changes' });
    const server = await relay({ maxPerSecond: 8 });
    const result = await startCli(
      ['send', file, '--list', 'pace-log', '--yes', '--rate', '40/s', '--connections', '2', '--log-format', 'json', ...FAST_RETRIES],
      {
        ...db,
        env: { ...db.env, SMTP_URL: server.url },
      },
    ).done;
    assert.equal(result.code, 0, result.stderr);
    const lines = jsonLines(result.stderr);
    const bulletinId = lines[0]?.bulletinId;
    const changes = lines.filter((line) => line.event === 'pace changed');
    assert.ok(changes.length > 0, 'the pace changed');
    for (const change of changes) {
      assert.equal(change.bulletinId, bulletinId);
      assert.ok(typeof change.rate === 'number' && change.rate > 0 && change.rate <= 40, `rate ${String(change.rate)}`);
      assert.ok(change.cause === null || typeof change.cause === 'string');
    }
    const first = changes[0];
    assert.equal(first?.cause, 'rate signal');
    assert.ok((first?.rate as number) < 40, 'slowed down');
    assert.match(String(first?.note), /the relay asks us to slow down \(450 4\.7\.0/);
  });

  test('bulletin pause, pace, unpause and cancel on a running send: log lines, and /metrics follows', async () => {
    const recipients = 60;
    const file = await listWith(db, 'steer-log', numberedAddresses('s', recipients), { subject: 'Steered' });
    const server = await relay();
    const running = startCli(['send', file, '--list', 'steer-log', '--yes', '--json', '--rate', '5/s', '--metrics-port', '0', '--log-format', 'json'], {
      ...db,
      env: { ...db.env, SMTP_URL: server.url },
    });
    const lineOf = (event: string) => jsonLines(running.stderr()).find((line) => line.event === event);
    await waitFor(() => lineOf('send started') !== undefined && server.received.length > 0, 'the send under way');
    const bulletinId = lineOf('send started')?.bulletinId as number;
    const bulletin = String(bulletinId);
    const url = lineOf('metrics listening')?.url as string;
    await runOk(['pause', bulletin], db);
    await waitFor(() => lineOf('paused') !== undefined, 'the paused line');
    assert.equal((await scrape(url)).value('bulletin_paused', { bulletin }), 1);
    await runOk(['pace', bulletin, '8/s'], db);
    await waitFor(() => lineOf('re-paced') !== undefined, 'the re-paced line');
    assert.equal(lineOf('re-paced')?.rate, 8);
    const repaced = await scrape(url);
    assert.equal(repaced.value('bulletin_pace_messages_per_second', { bulletin }), 8);
    assert.equal(repaced.value('bulletin_pace_cause', { bulletin, cause: 'bulletin pace' }), 1);
    await runOk(['unpause', bulletin], db);
    await waitFor(() => lineOf('unpaused') !== undefined, 'the unpaused line');
    assert.equal((await scrape(url)).value('bulletin_paused', { bulletin }), 0);
    await runOk(['cancel', bulletin, '--yes'], db);
    const result = await running.done;
    assert.equal(result.code, 0, result.stderr);
    const lines = jsonLines(result.stderr);
    for (const line of lines.filter((each) => ['paused', 're-paced', 'unpaused', 'cancelled'].includes(String(each.event)))) {
      assert.equal(line.bulletinId, bulletinId);
      if (line.event !== 'unpaused') assert.equal(typeof line.by, 'string', `by on ${String(line.event)}`);
    }
    assert.ok(lines.some((line) => line.event === 'cancelled'));
    const end = lines.find((line) => line.event === 'send ended');
    assert.equal(typeof end?.end, 'string');
    assert.ok((end?.sent as number) < recipients, 'cancelled before the end');
  });

  test('a relay down and back: the log says so, and /metrics shows it down meanwhile', async () => {
    const recipients = 16;
    const file = await listWith(db, 'relay-log', numberedAddresses('r', recipients), { subject: 'Relay down and back' });
    const good = await relay();
    const flaky = await relay();
    flaky.setBroken(true);
    const flakyName = `smtp://127.0.0.1:${flaky.port}`;
    const running = startCli(
      ['send', file, '--list', 'relay-log', '--yes', '--json', '--rate', '4/s', '--connections', '1', '--metrics-port', '0', '--log-format', 'json'],
      { ...db, env: { ...db.env, SMTP_URL: `${good.url},${flaky.url}` } },
    );
    await waitFor(() => jsonLines(running.stderr()).some((line) => line.event === 'relay down'), 'the relay down line');
    const url = jsonLines(running.stderr()).find((line) => line.event === 'metrics listening')?.url as string;
    const whileDown = await scrape(url);
    assert.equal(whileDown.value('bulletin_relay_up', { relay: flakyName }), 0);
    flaky.setBroken(false);
    await waitFor(() => jsonLines(running.stderr()).some((line) => line.event === 'relay back'), 'the relay back line');
    const result = await running.done;
    assert.equal(result.code, 0, result.stderr);
    assert.equal((JSON.parse(result.stdout) as { counts: { sent: number } }).counts.sent, recipients);
    const lines = jsonLines(result.stderr);
    const down = lines.filter((line) => line.event === 'relay down');
    const back = lines.filter((line) => line.event === 'relay back');
    assert.equal(down.length, 1, 'down once: the probes that fail while it is down say nothing more');
    assert.equal(down[0]?.relay, flakyName);
    assert.equal(down[0]?.level, 'warn');
    assert.equal(typeof down[0]?.bulletinId, 'number');
    assert.deepEqual(
      back.map((line) => line.relay),
      [flakyName],
    );
    assert.ok(good.received.length > 0 && flaky.received.some((message) => message.accepted), 'both relays carried mail');
  });

  test('the database unreachable when a send starts: the log says so and back, /metrics counts the seconds', async () => {
    const file = await listWith(db, 'outage-log', numberedAddresses('o', 8), { subject: 'Database outage' });
    const server = await relay();
    const proxy = await startDatabaseProxy(await db.url());
    try {
      await proxy.cut('refuse');
      const running = startCli(['send', file, '--list', 'outage-log', '--yes', '--json', '--rate', '4/s', '--metrics-port', '0', '--log-format', 'json'], {
        env: { DATABASE_URL: proxy.url, SMTP_URL: server.url },
        cwd: db.cwd,
      });
      let url = '';
      await waitFor(() => {
        url = (jsonLines(running.stderr()).find((line) => line.event === 'metrics listening')?.url as string | undefined) ?? '';
        return url !== '';
      }, 'the metrics line');
      await waitFor(async () => (await scrape(url)).value('bulletin_database_up') === 0, 'the database seen down');
      await new Promise((resolve) => setTimeout(resolve, 1500));
      const down = await scrape(url);
      assert.equal(down.value('bulletin_database_up'), 0);
      const counted = down.value('bulletin_database_unreachable_seconds_total') as number;
      assert.ok(counted >= 1.4 && counted < 30, `${counted} s counted while it is down`);
      await proxy.restore();
      let upAgain: ReturnType<typeof down.select> = [];
      await waitFor(async () => {
        const scraped = await scrape(url);
        upAgain = scraped.select('bulletin_database_unreachable_seconds_total');
        return scraped.value('bulletin_database_up') === 1;
      }, 'the database back');
      assert.ok((upAgain[0]?.value ?? 0) >= counted, 'the counter never goes back');
      const result = await running.done;
      assert.equal(result.code, 0, result.stderr);
      const lines = jsonLines(result.stderr);
      const events = lines.map((line) => line.event);
      assert.deepEqual(events.slice(0, 3), ['metrics listening', 'database unreachable', 'database back']);
      assert.deepEqual(events.slice(-2), ['send started', 'send finished']);
      assert.match(String(lines[1]?.error), /ECONNREFUSED/);
      assert.ok((lines[2]?.downSeconds as number) >= 1.4, `down ${String(lines[2]?.downSeconds)} s`);
      assert.doesNotMatch(result.stderr, /^bulletin:/m, 'no human sentence among the JSON lines');
    } finally {
      await proxy.close();
    }
  });

  test('serve --metrics: a one-click unsubscribe shows by source, and the requests by status', async () => {
    await runOk(['list', 'create', 'metrics-web', ...LIST_FLAGS], db);
    const env = { ...db.env, BULLETIN_SECRET: 'a-secret-for-the-metrics-test-0123456789abcdef' };
    await runOk(['subscribers', 'add', 'leaver@example.net', '--list', 'metrics-web'], { ...db, env });
    const link = (await runOk(['subscribers', 'unsubscribe-url', 'leaver@example.net', '--list', 'metrics-web', '--json'], { ...db, env })) as { url: string };
    const token = link.url.split('/u/')[1] as string;
    const serve = spawnBulletin(['serve', '--port', '0', '--metrics', '--log-format', 'json'], env);
    let base = '';
    await waitFor(() => {
      base = /Serving on (http:\/\/127\.0\.0\.1:\d+)/.exec(serve.stdout())?.[1] ?? '';
      return base !== '';
    }, 'serve to listen');
    const before = await scrape(`${base}/metrics`);
    assert.equal(before.value('bulletin_unsubscribes_total', { source: 'one-click' }), 0);
    const post = () =>
      fetch(`${base}/u/${token}`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: 'List-Unsubscribe=One-Click' });
    const left = await post();
    assert.equal(left.status, 200, await left.text());
    const again = await post(); // already unsubscribed: answered, not counted again
    assert.equal(again.status, 200);
    await again.text();
    const missing = await fetch(`${base}/u/not-a-token`);
    assert.equal(missing.status, 404);
    await missing.text();
    const after = await scrape(`${base}/metrics`);
    assert.equal(after.value('bulletin_unsubscribes_total', { source: 'one-click' }), 1);
    assert.equal(after.value('bulletin_unsubscribes_total', { source: 'page' }), 0);
    assert.equal(after.types.get('bulletin_http_requests_total'), 'counter');
    assert.equal(after.value('bulletin_http_requests_total', { status: '404' }), 1);
    // Two POSTs and the first /metrics (the second was not answered yet when it was counted).
    assert.equal(after.value('bulletin_http_requests_total', { status: '200' }), 3);
    serve.child.kill('SIGTERM');
    await serve.exited;
    const lines = jsonLines(serve.stderr());
    assert.deepEqual(
      lines.map((line) => line.event),
      ['server started', 'unsubscribed', 'stopping', 'server stopped'],
    );
    assert.deepEqual([lines[1]?.source, lines[1]?.list], ['one-click', 'metrics-web']);
    assert.doesNotMatch(serve.stderr(), /leaver|@example\.net/, 'no address in the log');
  });
  test('inbound --metrics-port 0: messages by outcome, too big, and recipients refused, as the mail came', async () => {
    await runOk(['list', 'create', 'metrics-in', ...LIST_FLAGS], db);
    const env = { ...db.env, BULLETIN_SECRET: 'a-secret-for-the-inbound-metrics-test-0123456789' };
    await runOk(['subscribers', 'add', 'requester@example.net', '--list', 'metrics-in'], { ...db, env });
    const link = (await runOk(['subscribers', 'unsubscribe-url', 'requester@example.net', '--list', 'metrics-in', '--json'], { ...db, env })) as {
      url: string;
    };
    const token = link.url.split('/u/')[1] as string;
    const inbound = spawnBulletin(['inbound', '--port', '0', '--metrics-port', '0', '--max-size', '2048', '--log-format', 'json'], env);
    let port = 0;
    let metricsUrl = '';
    await waitFor(() => {
      for (const line of jsonLines(inbound.stderr())) {
        if (line.event === 'server started') port = Number(line.port);
        if (line.event === 'metrics listening') metricsUrl = String(line.url);
      }
      return port > 0 && metricsUrl !== '';
    }, 'inbound to listen, and its metrics');
    const before = await scrape(metricsUrl);
    assert.equal(before.types.get('bulletin_inbound_messages_total'), 'counter');
    assert.equal(before.value('bulletin_inbound_messages_total', { outcome: 'ignored' }), 0);
    assert.equal(before.value('bulletin_inbound_recipients_refused_total'), 0);

    const transport = nodemailer.createTransport({ host: '127.0.0.1', port, secure: false, ignoreTLS: true });
    const send = (to: string, raw: string) =>
      transport.sendMail({ envelope: { from: '', to: [to] }, raw }).then(
        (info) => info.response,
        (error: Error) => error.message,
      );
    try {
      const mail = (subject: string, body = 'Hello.') => `From: someone@example.org\r\nTo: x@example.org\r\nSubject: ${subject}\r\n\r\n${body}\r\n`;
      assert.match(await send('bulletins-bounces@lists.example.net', mail('not a bounce at all')), /^250 /);
      assert.match(await send('bulletins-bounces@lists.example.net', mail('still not one')), /^250 /);
      assert.match(await send('bulletins-unsubscribe@lists.example.net', mail('unsubscribe not-a-valid-token')), /^250 /);
      assert.match(await send('bulletins-unsubscribe@lists.example.net', mail(`unsubscribe ${token}`)), /^250 /);
      assert.match(await send('bulletins-bounces@lists.example.net', mail('too big', 'x'.repeat(4096))), /552/);
      assert.match(await send('someone@elsewhere.example', mail('relay this')), /550/);
    } finally {
      transport.close();
    }
    const after = await scrape(metricsUrl);
    assert.equal(after.value('bulletin_inbound_messages_total', { outcome: 'ignored' }), 3, 'two that are not bounces, one request without a valid token');
    assert.equal(after.value('bulletin_inbound_messages_total', { outcome: 'unsubscribe request' }), 1);
    assert.equal(after.value('bulletin_inbound_messages_total', { outcome: 'too big' }), 1);
    assert.equal(after.value('bulletin_inbound_messages_total', { outcome: 'hard bounce' }), 0);
    assert.equal(after.value('bulletin_inbound_recipients_refused_total'), 1);
    inbound.child.kill('SIGTERM');
    assert.equal(await inbound.exited, 0, inbound.stderr());
    const events = jsonLines(inbound.stderr()).map((line) => line.event);
    assert.equal(events.filter((event) => event === 'mail handled').length, 5, 'one line per message after DATA (the 550 came before)');
  });
});
