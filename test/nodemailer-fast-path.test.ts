// The nodemailer fast path (src/send/nodemailer-fast-path.ts) overrides a private method of
// nodemailer's SMTPConnection. These tests fail loudly, naming the pinned nodemailer version, when an
// upgrade removed `_createSendStream` or changed what it takes or returns, and check that the
// override passes a prepared message through untouched while anything else is still dot-stuffed.
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { PassThrough, Transform } from 'node:stream';
import { test } from 'node:test';
import SMTPConnection from 'nodemailer/lib/smtp-connection';
import { PINNED_NODEMAILER, PreparedSmtpConnection, smtpDataOf } from '../src/send/nodemailer-fast-path.js';

const installed = (createRequire(import.meta.url)('nodemailer/package.json') as { version: string }).version;
const why = `src/send/nodemailer-fast-path.ts overrides SMTPConnection._createSendStream of nodemailer ${PINNED_NODEMAILER} (pinned in package.json); nodemailer ${installed} is installed`;

type Internals = {
  _createSendStream?: (callback: unknown) => Transform & { inByteCount: number; outByteCount: number };
  _envelope: unknown;
  _socket: unknown;
};

/** A connection that never connects, with what `_createSendStream` reads set up, writing into `socket`. */
function unconnected<T extends SMTPConnection>(make: () => T): { connection: T; socket: PassThrough } {
  const connection = make();
  const socket = new PassThrough();
  const internals = connection as unknown as Internals;
  internals._envelope = { from: 'a@example.org', to: ['b@example.net'], accepted: ['b@example.net'], rejected: [], rejectedErrors: [] };
  internals._socket = socket;
  return { connection, socket };
}

async function written(stream: Transform, socket: PassThrough, message: Buffer): Promise<Buffer> {
  const chunks: Buffer[] = [];
  socket.on('data', (chunk: Buffer) => chunks.push(chunk));
  await new Promise<void>((resolve) => {
    stream.once('end', () => resolve());
    stream.end(message);
  });
  await new Promise((resolve) => setImmediate(resolve));
  return Buffer.concat(chunks);
}

test(`nodemailer ${PINNED_NODEMAILER} still has the private SMTPConnection._createSendStream(callback) the fast path overrides`, () => {
  assert.ok(
    installed.startsWith(`${PINNED_NODEMAILER}.`),
    `${why}: the pin and the installed version differ; check the override against the new release before moving the pin.`,
  );
  const method = (SMTPConnection.prototype as unknown as Internals)._createSendStream;
  assert.equal(typeof method, 'function', `${why}: _createSendStream is gone.`);
  assert.equal(method!.length, 1, `${why}: _createSendStream no longer takes (callback) alone.`);
  const { connection, socket } = unconnected(() => new SMTPConnection({}));
  const stream = (connection as unknown as Internals)._createSendStream!(() => undefined);
  assert.ok(stream instanceof Transform, `${why}: _createSendStream no longer returns a Transform stream.`);
  assert.equal(typeof stream.inByteCount, 'number', `${why}: its stream has no inByteCount.`);
  assert.equal(typeof stream.outByteCount, 'number', `${why}: its stream has no outByteCount.`);
  assert.equal(typeof stream._transform, 'function', `${why}: its stream has no _transform to replace.`);
  assert.equal(typeof stream._flush, 'function', `${why}: its stream has no _flush to replace.`);
  socket.destroy();
});

test('a prepared message goes out byte for byte; anything else is still dot-stuffed by nodemailer', async () => {
  const prepared = smtpDataOf(Buffer.from('Subject: Fast\r\n\r\nHello.\r\n'));
  assert.ok(prepared !== null);
  const fast = unconnected(() => new PreparedSmtpConnection({}));
  fast.connection.prepared = true;
  const fastStream = (fast.connection as unknown as Internals)._createSendStream!(() => undefined);
  const out = await written(fastStream, fast.socket, prepared);
  assert.deepEqual(out, prepared, `${why}: the prepared bytes were changed on the way to the socket.`);
  assert.equal(fastStream.inByteCount, prepared.length);
  assert.equal(fastStream.outByteCount, prepared.length);

  const slow = unconnected(() => new PreparedSmtpConnection({}));
  const slowStream = (slow.connection as unknown as Internals)._createSendStream!(() => undefined);
  const stuffed = await written(slowStream, slow.socket, Buffer.from('Subject: Slow\r\n\r\n.leading dot\r\n'));
  assert.equal(stuffed.toString(), 'Subject: Slow\r\n\r\n..leading dot\r\n.\r\n', `${why}: nodemailer's own path no longer dot-stuffs and terminates.`);
});
