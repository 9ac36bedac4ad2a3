// `bulletin bounces process` end to end: bulletins really sent (--verp) to an SMTP server on 127.0.0.1,
// then bounces shaped like Postfix's, Exim's (plain text, and with a DSN part) and Gmail's quoting
// those messages' real Message-IDs and VERP envelope senders, read from .eml files, a maildir and an
// mbox; the database checked after each run. Also the mbox splitter and the report reader on their own.
import assert from 'node:assert/strict';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { simpleParser } from 'mailparser';
import { splitMbox } from '../src/bounce/mbox.js';
import { readBounce } from '../src/bounce/report.js';
import { LIST_FLAGS, rows } from './helpers/app.js';
import { runCli, runOk } from './helpers/cli.js';
import { createTestDatabase, DATABASE_KIND, type TestDatabase } from './helpers/database.js';
import { startSmtpServer, type TestSmtpServer } from './helpers/smtp-servers.js';

/** One message as it went out: what a bounce of it quotes. */
interface Sent {
  readonly email: string;
  readonly bulletinId: number;
  readonly messageId: string;
  /** The envelope sender the server saw: bulletins-bounces+<token>@lists.example.net */
  readonly verp: string;
  /** The message's header block, CRLF line ends, without the empty line after it. */
  readonly headers: string;
  readonly raw: string;
}

const PLAIN_BOUNCE_ADDRESS = 'bulletins-bounces@lists.example.net';
const DATE = 'Sat, 28 Nov 2026 20:44:01 +0000';

function crlf(lines: readonly string[]): string {
  return lines.join('\r\n');
}

function headerBlock(raw: string): string {
  return raw.slice(0, raw.indexOf('\r\n\r\n'));
}

/** Postfix's "Undelivered Mail Returned to Sender": notification, delivery-status, returned headers. */
function postfixBounce(
  sent: Sent,
  options: { id: string; status?: string; action?: string; diagnostic?: string; to?: string; returnHeaders?: boolean; notification?: string[] },
): string {
  const to = options.to ?? sent.verp;
  const status = options.status ?? '5.1.1';
  const action = options.action ?? 'failed';
  const diagnostic = options.diagnostic ?? `smtp; 550 ${status} <${sent.email}>: Recipient address\r\n    rejected: User unknown in virtual mailbox table`;
  const boundary = `${options.id}.1764362641/relay.example.net`;
  const delayed = action === 'delayed';
  return crlf([
    'Return-Path: <>',
    `X-Original-To: ${to}`,
    `Delivered-To: ${to}`,
    `Received: by lists.example.net (Postfix) id ${options.id}; ${DATE} (UTC)`,
    `Date: ${DATE} (UTC)`,
    'From: MAILER-DAEMON@relay.example.net (Mail Delivery System)',
    `Subject: ${delayed ? 'Delayed Mail (still being retried)' : 'Undelivered Mail Returned to Sender'}`,
    `To: ${to}`,
    'Auto-Submitted: auto-replied',
    'MIME-Version: 1.0',
    'Content-Type: multipart/report; report-type=delivery-status;',
    `\tboundary="${boundary}"`,
    'Content-Transfer-Encoding: 7bit',
    `Message-Id: <20261128204401.${options.id}@relay.example.net>`,
    '',
    'This is a MIME-encapsulated message.',
    '',
    `--${boundary}`,
    'Content-Description: Notification',
    'Content-Type: text/plain; charset=us-ascii',
    '',
    'This is the mail system at host relay.example.net.',
    '',
    ...(options.notification ?? [
      delayed
        ? '####################################################################\r\n# THIS IS A WARNING ONLY.  YOU DO NOT NEED TO RESEND YOUR MESSAGE. #\r\n####################################################################'
        : "I'm sorry to have to inform you that your message could not\r\nbe delivered to one or more recipients. It's attached below.",
    ]),
    '',
    '                   The mail system',
    '',
    `<${sent.email}>: host mx.example.net[192.0.2.25] said: ${diagnostic.replace(/^smtp; /, '')}`,
    '',
    `--${boundary}`,
    'Content-Description: Delivery report',
    'Content-Type: message/delivery-status',
    '',
    'Reporting-MTA: dns; relay.example.net',
    `X-Postfix-Queue-ID: ${options.id}`,
    `X-Postfix-Sender: rfc822; ${sent.verp}`,
    `Arrival-Date: ${DATE} (UTC)`,
    '',
    `Final-Recipient: rfc822; ${sent.email}`,
    `Original-Recipient: rfc822;${sent.email}`,
    `Action: ${action}`,
    `Status: ${status}`,
    'Remote-MTA: dns; mx.example.net',
    `Diagnostic-Code: ${diagnostic}`,
    ...(delayed ? ['Will-Retry-Until: Sat, 3 Dec 2026 20:44:00 +0000 (UTC)'] : []),
    '',
    ...(options.returnHeaders === false
      ? []
      : [
          `--${boundary}`,
          `Content-Description: ${delayed ? 'Delayed Message' : 'Undelivered Message Headers'}`,
          'Content-Type: text/rfc822-headers',
          '',
          'Received: from bulletin.example.net (bulletin.example.net [192.0.2.10])',
          `\tby relay.example.net (Postfix) with ESMTP id ${options.id}; ${DATE} (UTC)`,
          sent.headers,
          '',
        ]),
    `--${boundary}--`,
    '',
  ]);
}

/** Exim's classic notice: plain text, the failed address indented, then a copy of the message. */
function eximClassicBounce(sent: Sent, id: string): string {
  return crlf([
    'Return-path: <>',
    `Envelope-to: ${sent.verp}`,
    `Delivery-date: ${DATE}`,
    'Received: from Debian-exim by mx2.example.org with local (Exim 4.96)',
    `\tid ${id}`,
    `\tfor ${sent.verp}; ${DATE}`,
    `X-Failed-Recipients: ${sent.email}`,
    'Auto-Submitted: auto-replied',
    'From: Mail Delivery System <Mailer-Daemon@mx2.example.org>',
    `To: ${sent.verp}`,
    'Subject: Mail delivery failed: returning message to sender',
    `Message-Id: <E${id}@mx2.example.org>`,
    `Date: ${DATE}`,
    '',
    'This message was created automatically by mail delivery software.',
    '',
    'A message that you sent could not be delivered to one or more of its',
    'recipients. This is a permanent error. The following address(es) failed:',
    '',
    `  ${sent.email}`,
    '    host mx.example.net [192.0.2.25]',
    `    SMTP error from remote mail server after RCPT TO:<${sent.email}>:`,
    `    550 5.1.1 <${sent.email}>: Recipient address rejected: User unknown`,
    '',
    '------ This is a copy of the message, including all the headers. ------',
    '',
    `Return-path: <${sent.verp}>`,
    'Received: from bulletin.example.net ([192.0.2.10])',
    `\tby mx2.example.org with esmtp (Exim 4.96) id ${id}-0; ${DATE}`,
    sent.raw.slice(0, 3000),
    '',
  ]);
}

/** Exim 4.9x with a DSN part: the same notice, message/delivery-status, and the message itself. */
function eximDsnBounce(sent: Sent, id: string): string {
  const boundary = `1764362641-eximdsn-${id}`;
  return crlf([
    'Return-path: <>',
    `Envelope-to: ${sent.verp}`,
    `X-Failed-Recipients: ${sent.email}`,
    'Auto-Submitted: auto-replied',
    'From: Mail Delivery System <Mailer-Daemon@mx2.example.org>',
    `To: ${sent.verp}`,
    `Content-Type: multipart/report; report-type=delivery-status; boundary=${boundary}`,
    'MIME-Version: 1.0',
    'Subject: Mail delivery failed: returning message to sender',
    `Message-Id: <E${id}@mx2.example.org>`,
    `Date: ${DATE}`,
    '',
    `--${boundary}`,
    'Content-type: text/plain; charset=us-ascii',
    '',
    'This message was created automatically by mail delivery software.',
    '',
    'A message that you sent could not be delivered to one or more of its',
    'recipients. This is a permanent error. The following address(es) failed:',
    '',
    `  ${sent.email}`,
    '    host mx.example.net [192.0.2.25]',
    `    SMTP error from remote mail server after RCPT TO:<${sent.email}>:`,
    `    550 5.7.1 <${sent.email}>: Relay access denied`,
    '',
    `--${boundary}`,
    'Content-type: message/delivery-status',
    '',
    'Reporting-MTA: dns; mx2.example.org',
    '',
    'Action: failed',
    `Final-Recipient: rfc822;${sent.email}`,
    'Status: 5.0.0',
    'Remote-MTA: dns; mx.example.net',
    `Diagnostic-Code: smtp; 550 5.7.1 <${sent.email}>: Relay access denied`,
    '',
    `--${boundary}`,
    'Content-type: message/rfc822',
    '',
    sent.raw,
    `--${boundary}--`,
    '',
  ]);
}

/** Gmail's "Delivery Status Notification (Failure)", here kept in a mailbox without its envelope. */
function gmailBounce(sent: Sent, options: { to: string }): string {
  const outer = '000000000000a1b2c3d4e5f60001';
  const related = '000000000000a1b2c3d4e5f60002';
  const alternative = '000000000000a1b2c3d4e5f60003';
  return crlf([
    'Return-Path: <>',
    'From: Mail Delivery Subsystem <mailer-daemon@googlemail.com>',
    `To: ${options.to}`,
    'Auto-Submitted: auto-replied',
    'Subject: Delivery Status Notification (Failure)',
    `References: ${sent.messageId}`,
    `In-Reply-To: ${sent.messageId}`,
    `X-Failed-Recipients: ${sent.email}`,
    'Message-ID: <6749d4b1.050a0220.1b2c3.a1b2.GMR@mx.google.com>',
    `Date: ${DATE}`,
    'MIME-Version: 1.0',
    `Content-Type: multipart/report; boundary="${outer}"; report-type=delivery-status`,
    '',
    `--${outer}`,
    `Content-Type: multipart/related; boundary="${related}"`,
    '',
    `--${related}`,
    `Content-Type: multipart/alternative; boundary="${alternative}"`,
    '',
    `--${alternative}`,
    'Content-Type: text/plain; charset="UTF-8"',
    '',
    '** Address not found **',
    '',
    `Your message wasn't delivered to ${sent.email} because the address couldn't be found, or is unable to receive mail.`,
    '',
    'The response was:',
    '',
    'The email account that you tried to reach does not exist.',
    '',
    `--${alternative}`,
    'Content-Type: text/html; charset="UTF-8"',
    '',
    '<html><body><h2>Address not found</h2><p>The email account that you tried to reach does not exist.</p></body></html>',
    '',
    `--${alternative}--`,
    `--${related}--`,
    `--${outer}`,
    'Content-Type: message/delivery-status',
    '',
    'Reporting-MTA: dns; googlemail.com',
    'Received-From-MTA: dns; lists.example.net',
    `Arrival-Date: ${DATE}`,
    `X-Original-Message-ID: ${sent.messageId}`,
    '',
    `Final-Recipient: rfc822; ${sent.email}`,
    'Action: failed',
    'Status: 5.1.1',
    'Remote-MTA: dns; gmail-smtp-in.l.google.com. (2001:db8::1a, the server for the domain example.net.)',
    'Diagnostic-Code: smtp; 550-5.1.1 The email account that you tried to reach does not exist. Please try',
    " 550-5.1.1 double-checking the recipient's email address for typos or",
    ' 550 5.1.1 unnecessary spaces. a1si1234567ejb.123 - gsmtp',
    `Last-Attempt-Date: ${DATE}`,
    '',
    `--${outer}`,
    'Content-Type: message/rfc822',
    '',
    sent.raw,
    `--${outer}--`,
    '',
  ]);
}

function mboxOf(messages: readonly string[]): string {
  return messages
    .map((message) => {
      const body = message.replace(/\r\n/g, '\n').replace(/^(>*From )/gm, '>$1');
      return `From MAILER-DAEMON Sat Nov 28 20:44:01 2026\n${body}${body.endsWith('\n') ? '' : '\n'}\n`;
    })
    .join('');
}

interface RunJson {
  dryRun: boolean;
  threshold: number;
  messagesRead: number;
  hardBouncesRecorded: number;
  alreadyRecorded: number;
  deliveriesFailed: number;
  delayedIgnored: number;
  unrecognised: { file: string; line: number | null; message: number | null; reason: string }[];
  nowBounced: { list: string; email: string | null; bounces: number }[];
  messages: { kind: string; file: string; line: number | null; identifiedBy?: string; email?: string; status?: string; recorded?: boolean; bounces?: number }[];
}

let db: TestDatabase;
let server: TestSmtpServer;
let env: Record<string, string>;
/** sent[bulletin index][email] */
const sent: Map<string, Sent>[] = [];
const people = Array.from({ length: 8 }, (_, index) => `person${index}@example.net`);

async function sendBulletin(name: string, subject: string): Promise<Map<string, Sent>> {
  const file = join(db.cwd, name);
  await writeFile(file, `---\nsubject: ${subject}\n---\nHello {{subscriber.name}},\n\nFrom now on, **${subject}**.\n`);
  const already = server.received.length;
  const summary = (await runOk(['send', file, '--list', 'news', '--yes', '--json', '--verp', '--rate', '500/s', '--quiet'], { ...db, env })) as {
    bulletinId: number;
  };
  const byEmail = new Map<string, Sent>();
  for (const message of server.received.slice(already)) {
    const raw = message.raw.toString('latin1');
    byEmail.set(message.envelope.to[0]!, {
      email: message.envelope.to[0]!,
      bulletinId: summary.bulletinId,
      messageId: message.messageId,
      verp: message.envelope.from,
      headers: headerBlock(raw),
      raw,
    });
  }
  return byEmail;
}

function bounce(index: number, email: string): Sent {
  const found = sent[index]?.get(email);
  assert.ok(found, `bulletin ${index} went to ${email}`);
  return found;
}

async function delivery(sentMessage: Sent) {
  const [row] = await rows<{ state: string; last_reply: string | null; bounce_report: string | null }>(
    db,
    `SELECT d.state, d.last_reply, d.bounce_report FROM deliveries d JOIN subscribers s ON s.id = d.subscriber_id
      WHERE d.bulletin_id = $1 AND s.email = $2`,
    [sentMessage.bulletinId, sentMessage.email],
  );
  return row;
}

async function bouncesOf(email: string) {
  return rows<{
    status: string;
    diagnostic: string;
    original_message_id: string | null;
    bounce_message_id: string | null;
    delivery_id: number | null;
    reported_at: Date | null;
    recorded_at: Date;
  }>(
    db,
    `SELECT b.status, b.diagnostic, b.original_message_id, b.bounce_message_id, b.delivery_id, b.reported_at, b.recorded_at
       FROM bounces b JOIN subscribers s ON s.id = b.subscriber_id WHERE s.email = $1 ORDER BY b.id`,
    [email],
  );
}

async function membership(email: string) {
  const [row] = await rows<{ status: string; status_source: string }>(
    db,
    `SELECT m.status, m.status_source FROM memberships m JOIN subscribers s ON s.id = m.subscriber_id
       JOIN lists l ON l.id = m.list_id WHERE l.slug = 'news' AND s.email = $1`,
    [email],
  );
  return row;
}

async function processBounces(path: string, ...flags: string[]): Promise<RunJson> {
  return (await runOk(['bounces', 'process', path, '--json', ...flags], { ...db, env })) as RunJson;
}

before(async () => {
  db = await createTestDatabase();
  server = await startSmtpServer({});
  env = { ...db.env, SMTP_URL: server.url };
  await runOk(['list', 'create', 'news', ...LIST_FLAGS], db);
  const csv = join(db.cwd, 'people.csv');
  await writeFile(csv, `email,name\n${people.map((email, index) => `${email},Person ${index}`).join('\n')}\n`);
  await runOk(['subscribers', 'import', csv, '--list', 'news'], db);
  sent.push(await sendBulletin('a.md', 'Maintenance on Tuesday'));
  sent.push(await sendBulletin('b.md', 'Maintenance done'));
  sent.push(await sendBulletin('c.md', 'New mail servers'));
});
after(async () => {
  await server?.close();
  await db?.drop();
});

describe(`bulletin bounces process (${DATABASE_KIND} database)`, () => {
  test('the bulletins went out with VERP envelope senders and one Message-ID each', () => {
    for (const bulletin of sent) {
      assert.equal(bulletin.size, people.length);
      for (const message of bulletin.values()) {
        assert.match(message.verp, /^bulletins-bounces\+[A-Za-z0-9_-]{40}@lists\.example\.net$/);
        assert.match(message.messageId, /^<[0-9a-f]{32}@lists\.example\.net>$/);
      }
    }
  });

  test('a Postfix bounce (.eml) fails the delivery with the DSN status and counts one hard bounce; a re-run counts nothing', async () => {
    const original = bounce(0, people[0]!);
    const file = join(db.cwd, 'postfix.eml');
    await writeFile(file, postfixBounce(original, { id: '3F2A1C0123' }));
    const first = await processBounces(file);
    assert.equal(first.messagesRead, 1);
    assert.equal(first.hardBouncesRecorded, 1);
    assert.equal(first.deliveriesFailed, 1);
    assert.deepEqual(first.unrecognised, []);
    assert.equal(first.messages[0]?.identifiedBy, 'verp+message-id');
    assert.equal(first.messages[0]?.email, people[0]);

    const row = await delivery(original);
    assert.equal(row?.state, 'failed');
    assert.equal(row?.bounce_report, `bounce 5.1.1: 550 5.1.1 <${people[0]}>: Recipient address rejected: User unknown in virtual mailbox table`);
    assert.equal(row?.last_reply, '250 Message queued as test', "the relay's reply (its queue id) is kept beside the bounce");
    const recorded = await bouncesOf(people[0]!);
    assert.equal(recorded.length, 1);
    assert.equal(recorded[0]?.status, '5.1.1');
    assert.equal(recorded[0]?.original_message_id, original.messageId);
    assert.equal(recorded[0]?.bounce_message_id, '<20261128204401.3F2A1C0123@relay.example.net>');
    assert.equal(recorded[0]?.reported_at?.toISOString(), '2026-11-28T20:44:01.000Z');
    assert.notEqual(recorded[0]?.delivery_id, null);
    assert.deepEqual(await membership(people[0]!), { status: 'active', status_source: 'import' });

    const again = await processBounces(file);
    assert.equal(again.hardBouncesRecorded, 0);
    assert.equal(again.alreadyRecorded, 1);
    assert.equal(again.deliveriesFailed, 0);
    assert.equal((await bouncesOf(people[0]!)).length, 1, 'the same bounce is counted once');
  });

  test('a maildir: Exim classic and Exim with a DSN part fail their deliveries; an auto-reply is reported and skipped', async () => {
    const maildir = join(db.cwd, 'Maildir');
    for (const folder of ['cur', 'new', 'tmp']) await mkdir(join(maildir, folder), { recursive: true });
    const classic = bounce(0, people[1]!);
    const withDsn = bounce(0, people[2]!);
    await writeFile(join(maildir, 'new', '1764362641.M1P1.mx2:2,'), eximClassicBounce(classic, '1tQxyz-000AbC-2D'));
    await writeFile(join(maildir, 'cur', '1764362642.M2P1.mx2:2,S'), eximDsnBounce(withDsn, '1tQxzz-000AbD-3E'));
    await writeFile(
      join(maildir, 'cur', '1764362643.M3P1.mx2:2,S'),
      crlf([
        'From: Someone <someone@example.org>',
        `To: ${PLAIN_BOUNCE_ADDRESS}`,
        'Subject: Re: Maintenance on Tuesday',
        `Date: ${DATE}`,
        '',
        'Thanks for letting us know!',
        '',
      ]),
    );
    await writeFile(join(maildir, 'tmp', 'half-written'), 'garbage that is still being delivered');
    const summary = await processBounces(maildir);
    assert.equal(summary.messagesRead, 3, 'new/ and cur/, not tmp/');
    assert.equal(summary.hardBouncesRecorded, 2);
    assert.equal(summary.unrecognised.length, 1);
    assert.match(summary.unrecognised[0]!.file, /Maildir\/cur\/1764362643\.M3P1\.mx2:2,S$/);
    assert.equal(summary.unrecognised[0]!.reason, 'not a delivery status report');

    const classicRow = await delivery(classic);
    assert.equal(classicRow?.state, 'failed');
    assert.match(classicRow?.bounce_report ?? '', /^bounce 5\.1\.1: host mx\.example\.net \[192\.0\.2\.25\] SMTP error .* User unknown$/);
    const dsnRow = await delivery(withDsn);
    assert.equal(dsnRow?.state, 'failed');
    assert.equal(dsnRow?.bounce_report, `bounce 5.0.0: 550 5.7.1 <${people[2]}>: Relay access denied`);
    assert.equal((await bouncesOf(people[1]!))[0]?.status, '5.1.1');
    assert.equal((await bouncesOf(people[2]!))[0]?.status, '5.0.0');
  });

  test('a Gmail DSN found only by the returned Message-ID (kept without its VERP address) fails that delivery', async () => {
    const original = bounce(0, people[3]!);
    const file = join(db.cwd, 'gmail.eml');
    await writeFile(file, gmailBounce(original, { to: PLAIN_BOUNCE_ADDRESS }));
    const summary = await processBounces(file);
    assert.equal(summary.hardBouncesRecorded, 1);
    assert.equal(summary.messages[0]?.identifiedBy, 'message-id');
    const row = await delivery(original);
    assert.equal(row?.state, 'failed');
    assert.match(row?.bounce_report ?? '', /^bounce 5\.1\.1: 550-5\.1\.1 The email account that you tried to reach does not exist\. .* - gsmtp$/);
  });

  test('a delayed report (4.4.7) changes nothing and is counted as delayed', async () => {
    const original = bounce(0, people[5]!);
    const file = join(db.cwd, 'delayed.eml');
    await writeFile(
      file,
      postfixBounce(original, {
        id: '7A1B2C3D4E',
        action: 'delayed',
        status: '4.4.7',
        diagnostic: 'X-Postfix; delivery temporarily suspended: connect to mx.example.net[192.0.2.25]:25: Connection timed out',
      }),
    );
    const summary = await processBounces(file);
    assert.deepEqual(
      { read: summary.messagesRead, delayed: summary.delayedIgnored, hard: summary.hardBouncesRecorded, unrecognised: summary.unrecognised.length },
      { read: 1, delayed: 1, hard: 0, unrecognised: 0 },
    );
    assert.equal((await delivery(original))?.state, 'sent');
    assert.equal((await bouncesOf(people[5]!)).length, 0);
  });

  test('malformed messages are reported with their file and reason, skipped, and the run still exits 0', async () => {
    const dir = join(db.cwd, 'malformed');
    await mkdir(dir);
    const original = bounce(0, people[6]!);
    const token = /\+([A-Za-z0-9_-]{40})@/.exec(original.verp)![1]!;
    const tampered = original.verp.replace(token, `${token.slice(0, 10)}${token[10] === 'A' ? 'B' : 'A'}${token.slice(11)}`);
    const forged = { ...original, verp: tampered };
    await writeFile(join(dir, '1-garbage.eml'), Buffer.from([0x00, 0xff, 0xfe, 0x0a, 0x0d, 0x0a, 0x80, 0x81, 0x00, 0x0a]));
    await writeFile(join(dir, '2-bad-token.eml'), postfixBounce(forged, { id: 'B1', to: tampered, returnHeaders: false }));
    await writeFile(
      join(dir, '3-nobody.eml'),
      postfixBounce({ ...original, verp: PLAIN_BOUNCE_ADDRESS }, { id: 'B2', to: PLAIN_BOUNCE_ADDRESS, returnHeaders: false }),
    );
    await writeFile(
      join(dir, '4-someone-elses.eml'),
      postfixBounce({ ...original, verp: PLAIN_BOUNCE_ADDRESS, headers: 'Message-ID: <not-ours@elsewhere.example>' }, { id: 'B3', to: PLAIN_BOUNCE_ADDRESS }),
    );
    await writeFile(join(dir, '5-truncated.eml'), postfixBounce(original, { id: 'B4' }).slice(0, 700));
    await writeFile(join(dir, 'notes.txt'), 'not an .eml file: not read');
    const result = await runCli(['bounces', 'process', dir], { ...db, env });
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, /^5 messages read\.$/m);
    assert.match(result.stdout, /^  unrecognised, skipped: +5$/m);
    assert.match(result.stdout, /malformed\/1-garbage\.eml: not a mail message \(no header fields\)$/m);
    assert.match(result.stdout, /malformed\/2-bad-token\.eml: its VERP address does not verify/m);
    assert.match(result.stdout, /malformed\/3-nobody\.eml: no recipient identifiable: no VERP address and no original Message-ID$/m);
    assert.match(
      result.stdout,
      /malformed\/4-someone-elses\.eml: no recipient identifiable: no VERP address, and no delivery has the Message-ID <not-ours@elsewhere\.example>$/m,
    );
    assert.match(result.stdout, /malformed\/5-truncated\.eml: not a delivery status report$/m);
    assert.equal((await delivery(original))?.state, 'sent');
    assert.equal((await bouncesOf(people[6]!)).length, 0);
  });

  test('an mbox of several: three hard bounces make the subscription bounced; its garbage message is reported by line', async () => {
    const person = people[4]!;
    const messages = [0, 1, 2].map((index) =>
      postfixBounce(bounce(index, person), {
        id: `MB${index}`,
        notification: [
          "I'm sorry to have to inform you that your message could not",
          'From here on the report is quoted in the mbox.',
          '>From here too, twice.',
        ],
      }),
    );
    const garbage = '\u0000\u0001 not a message at all \u00ff';
    const mbox = mboxOf([messages[0]!, garbage, messages[1]!, messages[2]!]);
    const file = join(db.cwd, 'bounces.mbox');
    await writeFile(file, mbox, 'latin1');
    const dry = await processBounces(file, '--dry-run');
    assert.equal(dry.dryRun, true);
    assert.equal(dry.hardBouncesRecorded, 3);
    assert.deepEqual(dry.nowBounced, [{ list: 'news', email: person, bounces: 3 }], 'the dry run counts up across its messages');
    assert.equal((await bouncesOf(person)).length, 0, 'a dry run changes nothing');
    assert.equal((await delivery(bounce(0, person)))?.state, 'sent');

    const summary = await processBounces(file);
    assert.equal(summary.messagesRead, 4);
    assert.equal(summary.hardBouncesRecorded, 3);
    assert.equal(summary.deliveriesFailed, 3);
    const garbageLine = mbox.split('\n').findIndex((line, index, lines) => index > 0 && line.startsWith('From ') && lines[index + 1]!.startsWith('\u0000')) + 1;
    assert.deepEqual(
      summary.unrecognised.map((item) => ({ line: item.line, message: item.message })),
      [{ line: garbageLine, message: 2 }],
    );
    assert.deepEqual(
      summary.messages.filter((message) => message.kind === 'hard').map((message) => message.bounces),
      [1, 2, 3],
    );
    assert.deepEqual(summary.nowBounced, [{ list: 'news', email: person, bounces: 3 }]);
    assert.deepEqual(await membership(person), { status: 'bounced', status_source: 'bounce' });
    for (const index of [0, 1, 2]) assert.equal((await delivery(bounce(index, person)))?.state, 'failed');

    const again = await processBounces(file);
    assert.deepEqual(
      { recorded: again.hardBouncesRecorded, before: again.alreadyRecorded, bounced: again.nowBounced },
      { recorded: 0, before: 3, bounced: [] },
    );
    assert.equal((await bouncesOf(person)).length, 3);
  });

  test('later sends skip the bounced member: a new bulletin is not sent to them, and a retry of their failed delivery is skipped at its claim', async () => {
    const person = people[4]!;
    assert.equal((await membership(person))?.status, 'bounced');
    const later = await sendBulletin('d.md', 'Holiday hours');
    assert.equal(later.has(person), false, 'no message to the bounced member');
    assert.equal(later.size, people.length - 1);

    // `retry --state failed` makes every failed delivery of bulletin A due again; the claim judges the
    // member: the bounced one is skipped, the one with a single bounce (still active) is sent again.
    const bulletinA = bounce(0, person).bulletinId;
    const already = server.received.length;
    await runOk(['retry', String(bulletinA), '--state', 'failed', '--json', '--quiet'], { ...db, env });
    const retried = server.received.slice(already).map((message) => message.envelope.to[0]);
    assert.equal(retried.includes(person), false);
    assert.ok(retried.includes(people[0]), 'an active member with one bounce is retried');
    const row = await delivery(bounce(0, person));
    assert.equal(row?.state, 'skipped');
    assert.equal(row?.last_reply, 'skipped: no longer subscribed when its turn came');
  });

  test('--threshold and BULLETIN_BOUNCE_THRESHOLD; a bounce known only by its VERP address; a missing path exits 66', async () => {
    const person = people[7]!;
    const file = join(db.cwd, 'verp-only.eml');
    await writeFile(file, postfixBounce(bounce(1, person), { id: 'V1', returnHeaders: false }));
    const byEnv = (await runOk(['bounces', 'process', file, '--json', '--dry-run'], { ...db, env: { ...env, BULLETIN_BOUNCE_THRESHOLD: '1' } })) as RunJson;
    assert.equal(byEnv.threshold, 1);
    assert.deepEqual(byEnv.nowBounced, [{ list: 'news', email: person, bounces: 1 }]);
    const summary = await processBounces(file, '--threshold', '1');
    assert.equal(summary.messages[0]?.identifiedBy, 'verp');
    assert.equal(summary.deliveriesFailed, 0, 'without the Message-ID no delivery is named');
    assert.deepEqual(summary.nowBounced, [{ list: 'news', email: person, bounces: 1 }]);
    assert.deepEqual(await membership(person), { status: 'bounced', status_source: 'bounce' });
    assert.equal((await bouncesOf(person))[0]?.delivery_id, null);

    const missing = await runCli(['bounces', 'process', join(db.cwd, 'no-such-mbox')], { ...db, env });
    assert.equal(missing.code, 66);
    assert.match(missing.stderr, /^bulletin: There is no file or directory .*no-such-mbox\.\n$/);
    const badThreshold = await runCli(['bounces', 'process', file, '--threshold', '0'], { ...db, env });
    assert.equal(badThreshold.code, 2);
  });

  test('the summary for people names what was recorded, ignored, not understood and bounced', async () => {
    const file = join(db.cwd, 'people-summary.mbox');
    const person = people[5]!;
    const mbox = mboxOf([
      postfixBounce(bounce(0, person), {
        id: 'S1',
        action: 'delayed',
        status: '4.4.7',
        diagnostic: 'X-Postfix; connect to mx.example.net: Connection timed out',
      }),
      postfixBounce(bounce(1, person), { id: 'S2' }),
      'Subject: hello\n\nnot a bounce\n',
    ]);
    await writeFile(file, mbox);
    const fromLines = mbox.split('\n').flatMap((line, index) => (line.startsWith('From MAILER-DAEMON ') ? [index + 1] : []));
    const result = await runCli(['bounces', 'process', file, '--threshold', '1'], { ...db, env });
    assert.equal(result.code, 0, result.stderr);
    assert.equal(
      result.stdout,
      [
        '3 messages read.',
        '  hard bounces recorded: 1',
        '  deliveries failed:     1',
        '  delayed, ignored:      1',
        '  unrecognised, skipped: 1',
        `    ${file}:${fromLines[2]} (message 3): not a delivery status report`,
        '  subscriptions bounced: 1 (threshold: 1 hard bounce)',
        `    ${person} on news (1 hard bounce)`,
        '',
      ].join('\n'),
    );
  });
});

describe('mbox splitting and bounce reading (pure)', () => {
  test('mboxrd: From_ lines split after an empty line, quoted >From lines lose one >, CRLF kept', async () => {
    const mbox = Buffer.from(
      [
        'From a@example.net Sat Nov 28 20:44:01 2026',
        'Subject: one',
        '',
        '>From the start',
        '>>From quoted twice',
        'Not From here',
        'From inside a paragraph, unquoted by a sloppy writer',
        '',
        'From b@example.net Sat Nov 28 20:45:01 2026\r',
        'Subject: two\r',
        '\r',
        'body\r',
        '',
      ].join('\n'),
    );
    // Fed a few bytes at a time, so lines straddle chunks.
    const chunks = Array.from({ length: Math.ceil(mbox.length / 7) }, (_, index) => mbox.subarray(index * 7, index * 7 + 7));
    const messages = [];
    for await (const message of splitMbox(chunks)) messages.push(message);
    assert.deepEqual(
      messages.map((message) => ({ index: message.index, line: message.line, text: message.raw.toString('latin1') })),
      [
        {
          index: 1,
          line: 1,
          text: 'Subject: one\n\nFrom the start\n>From quoted twice\nNot From here\nFrom inside a paragraph, unquoted by a sloppy writer\n',
        },
        { index: 2, line: 9, text: 'Subject: two\r\n\r\nbody\r\n' },
      ],
    );
  });

  test('bytes before the first From_ line come out as message 0', async () => {
    const messages = [];
    for await (const message of splitMbox([Buffer.from('stray\n\nFrom x Sat Nov 28 20:44:01 2026\nSubject: s\n\nb\n')])) messages.push(message);
    assert.deepEqual(
      messages.map((message) => [message.index, message.line]),
      [
        [0, 1],
        [1, 3],
      ],
    );
  });

  test('each shape gives its status, diagnostic, VERP tokens and original Message-ID', async () => {
    const original: Sent = {
      email: 'jo@example.net',
      bulletinId: 1,
      messageId: '<0123456789abcdef0123456789abcdef@lists.example.net>',
      verp: `bulletins-bounces+${'A'.repeat(20)}${'b_-9'.repeat(5)}@lists.example.net`,
      headers: crlf([
        'From: ExampleNet <noreply@example.net>',
        'To: jo@example.net',
        'Subject: Hello',
        'Message-ID: <0123456789abcdef0123456789abcdef@lists.example.net>',
      ]),
      raw: '',
    };
    const withRaw = { ...original, raw: `${original.headers}\r\n\r\nHello there.\r\nFrom the team.\r\n` };
    const token = `${'A'.repeat(20)}${'b_-9'.repeat(5)}`;
    const postfix = await readBounce(Buffer.from(postfixBounce(original, { id: 'P1' })));
    assert.deepEqual(postfix.report, {
      outcome: 'permanent',
      status: '5.1.1',
      action: 'failed',
      finalRecipient: 'jo@example.net',
      diagnostic: '550 5.1.1 <jo@example.net>: Recipient address rejected: User unknown in virtual mailbox table',
      format: 'delivery-status',
    });
    assert.deepEqual(postfix.verpTokens, [token]);
    assert.deepEqual(postfix.originalMessageIds, [original.messageId]);

    const classic = await readBounce(
      Buffer.from(
        eximClassicBounce({ ...withRaw, verp: PLAIN_BOUNCE_ADDRESS }, 'X1').replace(
          `Return-path: <${PLAIN_BOUNCE_ADDRESS}>`,
          `Return-path: <${original.verp}>`,
        ),
      ),
    );
    assert.equal(classic.report?.format, 'exim-text');
    assert.equal(classic.report?.status, '5.1.1');
    assert.equal(classic.report?.finalRecipient, 'jo@example.net');
    assert.deepEqual(classic.verpTokens, [token], "found in the returned copy's Return-path");
    assert.deepEqual(classic.originalMessageIds, [original.messageId]);

    const gmail = await readBounce(Buffer.from(gmailBounce(withRaw, { to: PLAIN_BOUNCE_ADDRESS })));
    assert.equal(gmail.report?.status, '5.1.1');
    assert.deepEqual(gmail.verpTokens, []);
    assert.deepEqual(gmail.originalMessageIds, [original.messageId]);
    assert.equal(gmail.messageId, '<6749d4b1.050a0220.1b2c3.a1b2.GMR@mx.google.com>');

    const delayed = await readBounce(
      Buffer.from(postfixBounce(original, { id: 'P2', action: 'delayed', status: '4.4.7', diagnostic: 'X-Postfix; timed out' })),
    );
    assert.deepEqual([delayed.report?.outcome, delayed.report?.status, delayed.report?.action], ['temporary', '4.4.7', 'delayed']);

    const eximDelay = await readBounce(
      Buffer.from(
        crlf([
          'From: Mail Delivery System <Mailer-Daemon@mx2.example.org>',
          `To: ${original.verp}`,
          'Subject: Warning: message 1tQxyz-000AbC-2D delayed 24 hours',
          '',
          'This message was created automatically by mail delivery software.',
          'A message that you sent has not yet been delivered to one or more of its',
          'recipients after more than 24 hours on the queue on mx2.example.org.',
          '',
          '  jo@example.net',
          '    Delay reason: SMTP error from remote mail server after RCPT TO:<jo@example.net>:',
          '    451 4.7.1 Greylisted, try again later',
          '',
        ]),
      ),
    );
    assert.deepEqual([eximDelay.report?.outcome, eximDelay.report?.status], ['temporary', '4.7.1']);

    const success = await readBounce(
      Buffer.from(postfixBounce(original, { id: 'P3', action: 'delivered', status: '2.0.0', diagnostic: 'smtp; 250 2.0.0 Ok' })),
    );
    assert.equal(success.report?.outcome, 'success');
    const parsedOriginal = await simpleParser(Buffer.from(withRaw.raw));
    assert.equal(parsedOriginal.messageId, original.messageId, 'the fixture is a parseable message');
  });
});
