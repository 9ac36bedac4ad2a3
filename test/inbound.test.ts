// `bulletin inbound` over real SMTP: a nodemailer client delivers a bounce, an ARF complaint and
// unsubscribe requests, each acted on as it arrives; swaks raw sessions try to relay through it (every
// address not a list's own gets 550), send malformed mail, and run into each limit (size, recipients,
// connections, idle time). Then a real Postfix defers a message until it expires and its bounce comes
// back through a transport map to `inbound`: the delivery fails "expired at the relay" and counts.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { connect } from 'node:net';
import { promisify } from 'node:util';
import { after, before, describe, test } from 'node:test';
import nodemailer from 'nodemailer';
import { SMTPServer } from 'smtp-server';
import { openApp, type App } from '../src/app/context.js';
import { DEFAULT_INBOUND_LIMITS, startInboundServer } from '../src/app/inbound.js';
import { createList } from '../src/app/lists.js';
import { installationKeys } from '../src/app/secret.js';
import { addSubscriber } from '../src/app/subscribers.js';
import type { RunningInbound } from '../src/bounce/smtp-receiver.js';
import { signToken, type SigningKey } from '../src/domain/token.js';
import { insertBulletin } from '../src/store/bulletins.js';
import { enqueueDeliveries } from '../src/store/deliveries.js';
import { runCli } from './helpers/cli.js';
import { createTestDatabase, DATABASE_KIND, type TestDatabase } from './helpers/database.js';
import { postfixMissing, startPostfix, type TestPostfix } from './helpers/postfix.js';

const run = promisify(execFile);
const SECRET = 'the-current-secret-of-this-installation-0123456789';
const DOMAIN = 'lists.example.net';
const COMPLAINTS = 'fbl@lists.example.net';
const PEOPLE = ['bounced@example.org', 'complainer@example.org', 'requester@example.org', 'again@example.org', 'expired@example.org', 'delayed@example.org'];
let db: TestDatabase;
let app: App;
let inbound: RunningInbound;
const log: string[] = [];
let listId: number;
let bulletinId: number;
let signing: SigningKey;
const ids = new Map<string, number>();

const messageIdOf = (email: string) => `<d-${ids.get(email)}@${DOMAIN}>`;
const verpOf = (email: string) => `bulletins-bounces+${signToken('verp', { listId, subscriberId: ids.get(email)! }, signing)}@${DOMAIN}`;
const unsubscribeTokenOf = (email: string, subscription = 0) => signToken('unsubscribe', { listId, subscriberId: ids.get(email)!, subscription }, signing);

async function membership(email: string): Promise<[string, string]> {
  const { rows } = await app.db.query<{ status: string; source: string }>(
    'SELECT m.status::text, m.status_source AS source FROM memberships m WHERE m.list_id = $1 AND m.subscriber_id = $2',
    [listId, ids.get(email)],
  );
  return [rows[0]!.status, rows[0]!.source];
}

async function delivery(email: string): Promise<{ state: string; last_reply: string | null; bounce_report: string | null }> {
  const { rows } = await app.db.query<{ state: string; last_reply: string | null; bounce_report: string | null }>(
    'SELECT state::text, last_reply, bounce_report FROM deliveries WHERE bulletin_id = $1 AND subscriber_id = $2',
    [bulletinId, ids.get(email)],
  );
  return rows[0]!;
}

function crlf(lines: string[]): string {
  return `${lines.join('\r\n')}\r\n`;
}

/** Postfix's "Undelivered Mail Returned to Sender" for one of our deliveries, in its shape. */
function postfixBounce(email: string, options: { status: string; action: string; diagnostic: string }): string {
  const boundary = '4B1F2C0A9E.1764362641/relay.example.net';
  return crlf([
    `Date: Sat, 28 Nov 2026 20:44:01 +0000 (UTC)`,
    'From: MAILER-DAEMON@relay.example.net (Mail Delivery System)',
    'Subject: Undelivered Mail Returned to Sender',
    `To: ${verpOf(email)}`,
    'Auto-Submitted: auto-replied',
    'MIME-Version: 1.0',
    `Content-Type: multipart/report; report-type=delivery-status; boundary="${boundary}"`,
    `Message-Id: <20261128204401.4B1F2C0A9E@relay.example.net>`,
    '',
    `--${boundary}`,
    'Content-Description: Notification',
    'Content-Type: text/plain; charset=us-ascii',
    '',
    "I'm sorry to have to inform you that your message could not",
    'be delivered to one or more recipients.',
    '',
    `--${boundary}`,
    'Content-Description: Delivery report',
    'Content-Type: message/delivery-status',
    '',
    'Reporting-MTA: dns; relay.example.net',
    'X-Postfix-Queue-ID: 4B1F2C0A9E',
    `X-Postfix-Sender: rfc822; ${verpOf(email)}`,
    '',
    `Final-Recipient: rfc822; ${email}`,
    `Original-Recipient: rfc822;${email}`,
    `Action: ${options.action}`,
    `Status: ${options.status}`,
    `Diagnostic-Code: ${options.diagnostic}`,
    '',
    `--${boundary}`,
    'Content-Description: Undelivered Message Headers',
    'Content-Type: text/rfc822-headers',
    '',
    `Return-Path: <${verpOf(email)}>`,
    `Message-ID: ${messageIdOf(email)}`,
    'Subject: [ExampleNet-Bulletins] Maintenance',
    '',
    `--${boundary}--`,
  ]);
}

/** An ARF report (RFC 5965 §3 example's shape) about one of our messages; it names someone else as Original-Rcpt-To. */
function arfReport(email: string, options: { verp: boolean; messageId: boolean }): string {
  const boundary = 'part1_13d.2e68ed54_boundary';
  return crlf([
    'From: <feedback@mailbox.example>',
    'Date: Sat, 28 Nov 2026 21:00:00 +0000',
    'Subject: FW: [ExampleNet-Bulletins] Maintenance',
    `To: <${COMPLAINTS}>`,
    'Message-ID: <arf-1@mailbox.example>',
    'MIME-Version: 1.0',
    `Content-Type: multipart/report; report-type=feedback-report; boundary="${boundary}"`,
    '',
    `--${boundary}`,
    'Content-Type: text/plain; charset="US-ASCII"',
    '',
    'This is an email abuse report for an email message received from IP 192.0.2.1.',
    '',
    `--${boundary}`,
    'Content-Type: message/feedback-report',
    '',
    'Feedback-Type: abuse',
    'User-Agent: SomeGenerator/1.0',
    'Version: 1',
    `Original-Mail-From: <${options.verp ? verpOf(email) : `bulletins-bounces@${DOMAIN}`}>`,
    // Never trusted: a report may name anyone here.
    'Original-Rcpt-To: <again@example.org>',
    'Arrival-Date: Sat, 28 Nov 2026 20:00:00 +0000',
    'Reporting-MTA: dns; mail.mailbox.example',
    '',
    `--${boundary}`,
    'Content-Type: message/rfc822',
    'Content-Disposition: inline',
    '',
    `From: ExampleNet <noreply@example.net>`,
    `To: <${email}>`,
    'Subject: [ExampleNet-Bulletins] Maintenance',
    `Message-ID: ${options.messageId ? messageIdOf(email) : '<unknown@elsewhere.example>'}`,
    'Date: Sat, 28 Nov 2026 19:59:00 +0000',
    '',
    'The network will be down on Sunday.',
    `--${boundary}--`,
  ]);
}

async function sendMail(port: number, envelope: { from: string; to: string[] }, raw: string): Promise<string> {
  const transport = nodemailer.createTransport({ host: '127.0.0.1', port, secure: false, ignoreTLS: true });
  try {
    return (await transport.sendMail({ envelope, raw })).response;
  } finally {
    transport.close();
  }
}

async function swaks(port: number, args: string[]): Promise<string> {
  const result = await run('swaks', ['--server', '127.0.0.1', '--port', String(port), '--helo', 'client.example', '--timeout', '20', ...args]).catch(
    (error: { stdout?: string; stderr?: string }) => ({ stdout: error.stdout ?? '', stderr: error.stderr ?? '' }),
  );
  return `${result.stdout}${result.stderr}`;
}

/** A sent delivery for each person, with the relay's reply (queue id) as a send records it. */
async function sentBulletin(): Promise<number> {
  const bulletin = await insertBulletin(app.db, {
    listId,
    subject: 'Maintenance',
    source: '---\nsubject: Maintenance\n---\nThe network will be down on Sunday.\n',
    sourceName: 'maintenance.md',
    templates: {},
    verp: true,
    sentDate: new Date('2026-11-28T19:59:00Z'),
    messageIdVersion: 2,
  });
  await enqueueDeliveries(app.db, bulletin.id, listId);
  await app.db.query(
    `UPDATE deliveries SET state = 'sent', attempts = 1, sent_at = now(), relay = 'smtp://relay.example.net',
            message_id = '<d-' || subscriber_id || '@${DOMAIN}>', last_reply = '250 2.0.0 Ok: queued as 4B1F2C' || subscriber_id
      WHERE bulletin_id = $1`,
    [bulletin.id],
  );
  return bulletin.id;
}

before(async () => {
  db = await createTestDatabase();
  app = await openApp(db.config({ BULLETIN_SECRET: SECRET }), { notice: () => undefined });
  listId = (
    await createList(app, 'news', {
      name: 'ExampleNet-Bulletins',
      address: `bulletins@${DOMAIN}`,
      from: 'ExampleNet <noreply@example.net>',
      baseUrl: `https://${DOMAIN}`,
    })
  ).id;
  for (const email of PEOPLE) await addSubscriber(app, 'news', { address: email });
  const { rows } = await app.db.query<{ email: string; id: number }>('SELECT email, id FROM subscribers');
  for (const row of rows) ids.set(row.email, Number(row.id));
  signing = (await installationKeys(app)).signing;
  bulletinId = await sentBulletin();
  inbound = await startInboundServer(app, { host: '127.0.0.1', port: 0, complaintsAddress: COMPLAINTS, threshold: 1, log: (line) => log.push(line) });
});
after(async () => {
  await inbound?.close();
  await app?.close();
  await db?.drop();
});

describe(`bulletin inbound (${DATABASE_KIND} database)`, () => {
  test('a bounce delivered by nodemailer to a VERP address fails its delivery at once, keeping the relay reply beside it', async () => {
    const raw = postfixBounce('bounced@example.org', {
      status: '5.1.1',
      action: 'failed',
      diagnostic: 'smtp; 550 5.1.1 <bounced@example.org>: Recipient address rejected: User unknown',
    });
    const response = await sendMail(inbound.port, { from: '', to: [verpOf('bounced@example.org')] }, raw);
    assert.match(response, /^250 /);
    assert.deepEqual(await delivery('bounced@example.org'), {
      state: 'failed',
      last_reply: `250 2.0.0 Ok: queued as 4B1F2C${ids.get('bounced@example.org')}`,
      bounce_report: 'bounce 5.1.1: 550 5.1.1 <bounced@example.org>: Recipient address rejected: User unknown',
    });
    assert.deepEqual(await membership('bounced@example.org'), ['bounced', 'bounce'], 'threshold 1');
    const line = log.at(-1) ?? '';
    assert.match(
      line,
      /^inbound: from=<> to=<bulletins-bounces\+…@lists\.example\.net> size=\d+: hard bounce 5\.1\.1 on news, delivery \d+ failed, member now bounced$/,
    );
    assert.ok(!line.includes(verpOf('bounced@example.org')), 'no token in the log');
  });

  test('an ARF complaint to the complaints address unsubscribes the member it is about (by VERP), not the one it names', async () => {
    const response = await sendMail(
      inbound.port,
      { from: 'feedback@mailbox.example', to: [COMPLAINTS] },
      arfReport('complainer@example.org', { verp: true, messageId: true }),
    );
    assert.match(response, /^250 /);
    assert.deepEqual(await membership('complainer@example.org'), ['unsubscribed', 'complaint']);
    assert.deepEqual(await membership('again@example.org'), ['active', 'command line'], 'Original-Rcpt-To names nobody');
    assert.equal((await delivery('complainer@example.org')).state, 'sent', 'a complaint is no failed delivery');
    const { rows } = await app.db.query<{ feedback_type: string; bulletin_id: number }>('SELECT feedback_type, bulletin_id FROM complaints');
    assert.deepEqual(rows, [{ feedback_type: 'abuse', bulletin_id: bulletinId }]);
    assert.match(log.at(-1) ?? '', new RegExp(`complaint \\(abuse\\) on news about bulletin ${bulletinId}, member unsubscribed$`));
    // The same report again counts nothing; one that names nobody we sent (no VERP, unknown Message-ID) changes nothing.
    await sendMail(inbound.port, { from: 'feedback@mailbox.example', to: [COMPLAINTS] }, arfReport('complainer@example.org', { verp: true, messageId: true }));
    await sendMail(inbound.port, { from: 'feedback@mailbox.example', to: [COMPLAINTS] }, arfReport('again@example.org', { verp: false, messageId: false }));
    assert.equal((await app.db.query('SELECT 1 FROM complaints')).rows.length, 1);
    assert.deepEqual(await membership('again@example.org'), ['active', 'command line']);
    assert.match(log.at(-1) ?? '', /ignored: a complaint, but no recipient identifiable/);
  });

  test('an unsubscribe request to LIST-unsubscribe@ with the token in the subject unsubscribes (mailto); a bad or old token changes nothing', async () => {
    const transport = nodemailer.createTransport({ host: '127.0.0.1', port: inbound.port, secure: false, ignoreTLS: true });
    try {
      const forged = await transport.sendMail({
        from: 'requester@example.org',
        to: `bulletins-unsubscribe@${DOMAIN}`,
        subject: `unsubscribe ${'A'.repeat(40)}`,
        text: 'please',
      });
      assert.match(forged.response, /^250 /, 'accepted, and nobody is answered');
      assert.deepEqual(await membership('requester@example.org'), ['active', 'command line']);
      assert.match(log.at(-1) ?? '', /ignored: an unsubscribe request whose token does not verify; nothing changed$/);
      const none = await transport.sendMail({
        from: 'requester@example.org',
        to: `bulletins-unsubscribe@${DOMAIN}`,
        subject: 'unsubscribe',
        text: 'take me off',
      });
      assert.match(none.response, /^250 /);
      assert.match(log.at(-1) ?? '', /without a token/);

      const real = await transport.sendMail({
        from: 'Someone <requester@example.org>',
        to: `bulletins-unsubscribe@${DOMAIN}`,
        subject: `unsubscribe ${unsubscribeTokenOf('requester@example.org')}`,
        text: '',
      });
      assert.match(real.response, /^250 /);
      assert.deepEqual(await membership('requester@example.org'), ['unsubscribed', 'mailto']);
      assert.match(log.at(-1) ?? '', /unsubscribe request: r\*\*\*@example\.org unsubscribed on news \(mailto\)$/);

      // The token in the body, as some mail programs put it; and a link of an earlier subscription.
      const old = unsubscribeTokenOf('again@example.org');
      await addSubscriber(app, 'news', { address: 'again@example.org' });
      await app.db.query(`UPDATE memberships SET status = 'unsubscribed' WHERE subscriber_id = $1`, [ids.get('again@example.org')]);
      await addSubscriber(app, 'news', { address: 'again@example.org', resubscribe: true });
      const stale = await transport.sendMail({
        from: 'again@example.org',
        to: `bulletins-unsubscribe@${DOMAIN}`,
        subject: 'Unsubscribe',
        text: `unsubscribe ${old}\n`,
      });
      assert.match(stale.response, /^250 /);
      assert.deepEqual(await membership('again@example.org'), ['active', 'command line']);
      assert.match(log.at(-1) ?? '', /out of date/);
      await transport.sendMail({
        from: 'again@example.org',
        to: `bulletins-unsubscribe@${DOMAIN}`,
        subject: 'Unsubscribe',
        text: `unsubscribe ${unsubscribeTokenOf('again@example.org', 1)}\n`,
      });
      assert.deepEqual(await membership('again@example.org'), ['unsubscribed', 'mailto']);
    } finally {
      transport.close();
    }
  });

  test("swaks: every address that is not a list's own gets 550, whatever the relay trick; the list addresses are taken", async () => {
    const refused = [
      'victim@elsewhere.example',
      `victim%elsewhere.example@${DOMAIN}`,
      `@${DOMAIN}:victim@elsewhere.example`,
      `bulletins-unsubscribe@${DOMAIN}.elsewhere.example`,
      `"bulletins-unsubscribe@${DOMAIN}"@elsewhere.example`,
      `bulletins@${DOMAIN}`,
      `postmaster@${DOMAIN}`,
      `bulletins-unsubscribe+x@${DOMAIN}`,
      `victim@[127.0.0.1]`,
    ];
    for (const to of refused) {
      const session = await swaks(inbound.port, ['--from', 'spammer@elsewhere.example', '--to', to, '--quit-after', 'RCPT']);
      assert.match(session, /<\*\* 5\d\d /, `${to}: ${session}`);
      assert.doesNotMatch(session, /-> RCPT TO:.*\n<- {2}250 /, to);
    }
    for (const to of [`bulletins-unsubscribe@${DOMAIN}`, `BULLETINS-BOUNCES@${DOMAIN.toUpperCase()}`, `bulletins-bounces+anything@${DOMAIN}`, COMPLAINTS]) {
      const session = await swaks(inbound.port, ['--from', '<>', '--to', to, '--quit-after', 'RCPT']);
      assert.match(session, /<- {2}250 /, `${to}: ${session}`);
      assert.doesNotMatch(session, /<\*\* /, to);
    }
    // Relaying through us by mixing an address of ours with a stranger's: the stranger is refused, only ours gets the message.
    const mixed = await swaks(inbound.port, [
      '--from',
      'spammer@elsewhere.example',
      '--to',
      `victim@elsewhere.example,bulletins-unsubscribe@${DOMAIN}`,
      '--body',
      'buy now',
    ]);
    assert.match(mixed, /<\*\* 550 5\.7\.1 /);
    assert.match(mixed, /<- {2}250 2\.0\.0 Thank you/);
    assert.match(log.at(-1) ?? '', /to=<bulletins-unsubscribe@lists\.example\.net> size=\d+: ignored/);
  });

  test('swaks: malformed mail is accepted and ignored (no backscatter), and changes nothing', async () => {
    const before = log.length;
    const { writeFile } = await import('node:fs/promises');
    const { join } = await import('node:path');
    const file = join(db.cwd, 'garbage.txt');
    await writeFile(file, Buffer.from('this is not a mail message at all\r\n\x00\x01\xff binary\r\n.\r\n', 'latin1'));
    const garbage = await swaks(inbound.port, ['--from', '<>', '--to', `bulletins-bounces@${DOMAIN}`, '--data', file]);
    assert.match(garbage, /<- {2}250 2\.0\.0 Thank you/);
    const headersOnly = await swaks(inbound.port, [
      '--from',
      '<>',
      '--to',
      COMPLAINTS,
      '--data',
      'Content-Type: multipart/report; report-type=feedback-report; boundary=x\r\n\r\n--x\r\nContent-Type: message/feedback-report\r\n\r\n--x--\r\n',
    ]);
    assert.match(headersOnly, /<- {2}250 /);
    const lines = log.slice(before);
    assert.equal(lines.length, 2, 'one line per message');
    assert.match(lines[0]!, /ignored: /);
    assert.match(lines[1]!, /ignored: a feedback report without a Feedback-Type/);
    assert.equal((await app.db.query('SELECT 1 FROM complaints')).rows.length, 1);
  });

  test(`limits: size, recipients, connections and idle time, each with its default (${JSON.stringify(DEFAULT_INBOUND_LIMITS)})`, async () => {
    assert.deepEqual(DEFAULT_INBOUND_LIMITS, { maxMessageBytes: 10 * 1024 * 1024, maxConnections: 20, maxRecipients: 10, idleTimeoutMs: 60_000 });
    const small = await startInboundServer(app, {
      host: '127.0.0.1',
      port: 0,
      limits: { maxMessageBytes: 4096, maxConnections: 2, maxRecipients: 2, idleTimeoutMs: 1000 },
      log: (line) => log.push(line),
    });
    try {
      const ehlo = await swaks(small.port, ['--from', '<>', '--to', `bulletins-bounces@${DOMAIN}`, '--quit-after', 'EHLO']);
      assert.match(ehlo, /250[ -]SIZE 4096/);
      assert.doesNotMatch(ehlo, /STARTTLS|AUTH/);
      const big = await swaks(small.port, ['--from', '<>', '--to', `bulletins-bounces@${DOMAIN}`, '--body', 'x'.repeat(8000)]);
      assert.match(big, /<\*\* 552 5\.3\.4 /);
      assert.match(log.at(-1) ?? '', /refused: over 4096 bytes \(552\)/);
      const many = await swaks(small.port, [
        '--from',
        '<>',
        '--to',
        `bulletins-bounces@${DOMAIN},bulletins-unsubscribe@${DOMAIN},${COMPLAINTS}`,
        '--quit-after',
        'RCPT',
      ]);
      assert.match(many, /<\*\* 4\d\d 4\.5\.3 Too many recipients/);

      // Two connections held open; a third is told 421.
      const greet = (port: number) =>
        new Promise<{ greeting: string; socket: ReturnType<typeof connect> }>((resolve) => {
          const socket = connect(port, '127.0.0.1');
          socket.once('data', (chunk) => resolve({ greeting: chunk.toString(), socket }));
        });
      const held = [await greet(small.port), await greet(small.port)];
      const third = await greet(small.port);
      assert.match(third.greeting, /^421 /);
      for (const each of [...held, third]) each.socket.destroy();

      // A silent client is cut off after the idle time (once the server has seen the others go).
      let idle = await greet(small.port);
      for (let tries = 0; !idle.greeting.startsWith('220 ') && tries < 50; tries++) {
        idle.socket.destroy();
        await new Promise((resolve) => setTimeout(resolve, 100));
        idle = await greet(small.port);
      }
      assert.match(idle.greeting, /^220 /);
      const started = Date.now();
      const closed = await new Promise<string>((resolve) => {
        let said = '';
        idle.socket.on('data', (chunk) => (said += chunk.toString()));
        idle.socket.on('close', () => resolve(said));
      });
      const seconds = (Date.now() - started) / 1000;
      assert.match(closed, /^421 .*[Tt]imeout/);
      assert.ok(seconds >= 0.8 && seconds < 5, `closed after ${seconds} s`);
    } finally {
      await small.close();
    }
  });

  test('bounces process reads all three kinds from a maildir as inbound does', async () => {
    const { mkdir, writeFile } = await import('node:fs/promises');
    const { join } = await import('node:path');
    const { processBounces } = await import('../src/app/bounces.js');
    const dir = join(db.cwd, 'Maildir');
    await mkdir(join(dir, 'new'), { recursive: true });
    await mkdir(join(dir, 'cur'), { recursive: true });
    await addSubscriber(app, 'news', { address: 'folder@example.org' });
    ids.set('folder@example.org', Number((await app.db.query<{ id: number }>(`SELECT id FROM subscribers WHERE email = 'folder@example.org'`)).rows[0]!.id));
    await writeFile(
      join(dir, 'new', '1.request'),
      crlf(['From: folder@example.org', `To: bulletins-unsubscribe@${DOMAIN}`, `Subject: unsubscribe ${unsubscribeTokenOf('folder@example.org')}`, '', '']),
    );
    await writeFile(
      join(dir, 'new', '2.delayed'),
      postfixBounce('delayed@example.org', { status: '4.4.7', action: 'delayed', diagnostic: 'X-Postfix; connect to mx.example.org: Connection timed out' }),
    );
    await writeFile(
      join(dir, 'new', '3.expired'),
      postfixBounce('expired@example.org', { status: '4.2.2', action: 'failed', diagnostic: 'smtp; 452 4.2.2 <expired@example.org>: Mailbox full' }),
    );
    const summary = await processBounces(app, dir, 'Maildir', { threshold: 1 });
    assert.equal(summary.unsubscribeRequests, 1);
    assert.equal(summary.delayedIgnored, 1, 'Action: delayed stays a delay');
    assert.equal(summary.hardBouncesRecorded, 1);
    assert.deepEqual(await membership('folder@example.org'), ['unsubscribed', 'mailto']);
    assert.equal((await delivery('delayed@example.org')).state, 'sent');
    assert.deepEqual(await delivery('expired@example.org'), {
      state: 'failed',
      last_reply: `250 2.0.0 Ok: queued as 4B1F2C${ids.get('expired@example.org')}`,
      bounce_report: 'expired at the relay: bounce 4.2.2: 452 4.2.2 <expired@example.org>: Mailbox full',
    });
    assert.deepEqual(await membership('expired@example.org'), ['bounced', 'bounce'], 'it counts toward the threshold');
  });
});

describe(`bulletin inbound behind a real Postfix (${DATABASE_KIND} database)`, { skip: postfixMissing() ?? false }, () => {
  let postfix: TestPostfix;
  let deferring: SMTPServer;
  let deferringPort: number;

  before(async () => {
    // The recipient's server: a full mailbox, a temporary failure (452 4.2.2), every time.
    deferring = new SMTPServer({
      authOptional: true,
      disabledCommands: ['AUTH', 'STARTTLS'],
      logger: false,
      onRcptTo(address, _session, callback) {
        callback(Object.assign(new Error(`4.2.2 <${address.address}>: Mailbox full, try again later`), { responseCode: 452 }));
      },
    });
    await new Promise<void>((resolve) => deferring.listen(0, '127.0.0.1', resolve));
    deferringPort = (deferring.server.address() as { port: number }).port;
    postfix = await startPostfix({
      main: {
        // Mail for the recipients goes to their (deferring) server, and tried once only: a temporary
        // failure then expires at once, as after days of retries (maximal_queue_lifetime).
        default_transport: `smtp:[127.0.0.1]:${deferringPort}`,
        relay_transport: `smtp:[127.0.0.1]:${deferringPort}`,
        maximal_queue_lifetime: '0',
        bounce_queue_lifetime: '0',
        // README, "Behind Postfix": the lists' domain goes to `bulletin inbound`.
        relay_domains: DOMAIN,
        transport_maps: `inline:{ ${DOMAIN}=smtp:[127.0.0.1]:${inbound.port} }`,
        smtp_tls_security_level: 'none',
        smtp_host_lookup: 'native',
      },
    });
  });
  after(async () => {
    await postfix?.stop();
    await new Promise<void>((resolve) => (deferring ? deferring.close(() => resolve()) : resolve()));
  });

  test('a message deferred until it expired comes back as Action: failed, Status: 4.2.2 and fails the delivery ("expired at the relay")', async () => {
    await addSubscriber(app, 'news', { address: 'full@mx.example.org' });
    const subscriberId = Number((await app.db.query<{ id: number }>(`SELECT id FROM subscribers WHERE email = 'full@mx.example.org'`)).rows[0]!.id);
    ids.set('full@mx.example.org', subscriberId);
    await app.db.query(`INSERT INTO deliveries (bulletin_id, subscriber_id) VALUES ($1, $2)`, [bulletinId, subscriberId]);
    const transport = nodemailer.createTransport({ host: '127.0.0.1', port: postfix.port, secure: false, ignoreTLS: true });
    let reply: string;
    try {
      reply = (
        await transport.sendMail({
          envelope: { from: verpOf('full@mx.example.org'), to: ['full@mx.example.org'] },
          raw: crlf([
            `From: ExampleNet <noreply@example.net>`,
            'To: full@mx.example.org',
            'Subject: [ExampleNet-Bulletins] Maintenance',
            `Message-ID: ${messageIdOf('full@mx.example.org')}`,
            '',
            'The network will be down on Sunday.',
          ]),
        })
      ).response;
    } finally {
      transport.close();
    }
    assert.match(reply, /^250 2\.0\.0 Ok: queued as [0-9A-Za-z]+/);
    await app.db.query(`UPDATE deliveries SET state = 'sent', message_id = $3, last_reply = $4 WHERE bulletin_id = $1 AND subscriber_id = $2`, [
      bulletinId,
      subscriberId,
      messageIdOf('full@mx.example.org'),
      reply,
    ]);
    const deadline = Date.now() + 60_000;
    while ((await delivery('full@mx.example.org')).state !== 'failed' && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 250));
    const row = await delivery('full@mx.example.org');
    assert.equal(row.state, 'failed', `the bounce came back through inbound; Postfix log:\n${await postfix.log()}`);
    assert.equal(row.last_reply, reply, "Postfix's reply with its queue id is kept");
    assert.match(row.bounce_report ?? '', /^expired at the relay: bounce 4\.2\.2: 452 4\.2\.2 <full@mx\.example\.org>: Mailbox full/);
    const { rows } = await app.db.query<{ status: string }>('SELECT status FROM bounces WHERE subscriber_id = $1', [subscriberId]);
    assert.deepEqual(rows, [{ status: '4.2.2' }], 'it counts toward the bounce threshold');
    assert.deepEqual(await membership('full@mx.example.org'), ['bounced', 'bounce']);
    assert.match(
      log.find((line) => line.includes('expired at the relay 4.2.2')) ?? '',
      /^inbound: from=<> to=<bulletins-bounces\+…@lists\.example\.net> size=\d+: expired at the relay 4\.2\.2 on news/,
    );
  });
});

test('`bulletin deliveries` shows the relay reply and the bounce side by side; `list create` refuses an http base URL', async () => {
  await inbound.close();
  await app.close();
  const env = { ...db.env, BULLETIN_SECRET: SECRET };
  const table = await runCli(['deliveries', String(bulletinId), '--state', 'failed'], { env, cwd: db.cwd });
  assert.equal(table.code, 0, table.stderr);
  assert.match(table.stdout, /LAST REPLY\s+BOUNCE/);
  assert.match(table.stdout, /bounced@example\.org\s+failed\s+1\s+250 2\.0\.0 Ok: queued as 4B1F2C\d+\s+bounce 5\.1\.1: 550 5\.1\.1/);
  const status = await runCli(['status', String(bulletinId)], { env, cwd: db.cwd });
  assert.match(status.stdout, /complaints \(feedback loops\): 1, each complainer unsubscribed/);
  const http = await runCli(
    ['list', 'create', 'plain', '--name', 'Plain', '--address', 'plain@lists.example.net', '--from', 'p@example.net', '--base-url', 'http://lists.example.net'],
    { env, cwd: db.cwd },
  );
  assert.equal(http.code, 65, http.stderr);
  assert.match(
    http.stderr,
    /--base-url "http:\/\/lists\.example\.net" must be https: mail programs send the one-click unsubscribe \(RFC 8058\) only to an https link \(--allow-http for a test set-up\)\./,
  );
  for (const url of ['http://127.0.0.1:8080', 'http://localhost:8080']) {
    const loopback = await runCli(
      [
        'list',
        'create',
        `loop${url.length}${url.includes('local') ? 'l' : 'i'}`,
        '--name',
        'Loop',
        '--address',
        'loop@lists.example.net',
        '--from',
        'p@example.net',
        '--base-url',
        url,
      ],
      { env, cwd: db.cwd },
    );
    assert.equal(loopback.code, 0, loopback.stderr);
  }
  const allowed = await runCli(
    [
      'list',
      'create',
      'plain',
      '--name',
      'Plain',
      '--address',
      'plain@lists.example.net',
      '--from',
      'p@example.net',
      '--base-url',
      'http://lists.example.net',
      '--allow-http',
    ],
    { env, cwd: db.cwd },
  );
  assert.equal(allowed.code, 0, allowed.stderr);
  const update = await runCli(['list', 'update', 'news', '--base-url', 'http://news.example.net'], { env, cwd: db.cwd });
  assert.equal(update.code, 65);
  const help = await runCli(['inbound', '--help'], { env, cwd: db.cwd });
  assert.match(help.stdout, /--max-size <bytes>[\s\S]*?\(default:\s+10485760\)/);
  assert.match(help.stdout, /--max-connections <n>[\s\S]*?\(default:\s+20\)/);
  assert.match(help.stdout, /--max-recipients <n>[\s\S]*?\(default:\s+10\)/);
  assert.match(help.stdout, /--timeout <seconds>[\s\S]*?\(default:\s+60\)/);
});
