// The fast path for messages already in SMTP DATA form (CRLF only, no line starting with a dot:
// what src/render produces): they skip nodemailer's byte-by-byte dot-stuffing and go out with their
// terminator in one write. It overrides nodemailer's private `SMTPConnection._createSendStream`.
import { Readable, type Transform } from 'node:stream';
import SMTPConnection from 'nodemailer/lib/smtp-connection';

/** The nodemailer release this override was written against (package.json pins it). */
export const PINNED_NODEMAILER = '10.6';

/** The message as a stream (so its end is observable), without Readable.from's async-iterator machinery. */
export class OneBufferStream extends Readable {
  constructor(private buffer: Buffer | null) {
    super();
  }

  override _read(): void {
    this.push(this.buffer);
    if (this.buffer !== null) {
      this.buffer = null;
      this.push(null);
    }
  }
}

const LF = 0x0a;
const CR = 0x0d;
const DOT = 0x2e;
const DATA_END = Buffer.from('.\r\n');

/**
 * The message with its end-of-data line (`.` CRLF) appended, when it is already in SMTP DATA form:
 * every line ends in CRLF (no bare CR or LF) and none starts with a dot. Null otherwise. The scan
 * jumps from line end to line end with Buffer.indexOf (native), a few microseconds a message where
 * a byte-by-byte loop in JavaScript takes tens.
 */
export function smtpDataOf(message: Buffer): Buffer | null {
  if (message.length < 2 || message[0] === DOT || message[message.length - 2] !== CR || message[message.length - 1] !== LF) return null;
  let lineFeeds = 0;
  for (let at = message.indexOf(LF); at !== -1; at = message.indexOf(LF, at + 1)) {
    if (message[at - 1] !== CR || message[at + 1] === DOT) return null;
    lineFeeds++;
  }
  // As many CRs as CRLFs: no bare CR anywhere.
  let carriageReturns = 0;
  for (let at = message.indexOf(CR); at !== -1; at = message.indexOf(CR, at + 1)) carriageReturns++;
  if (carriageReturns !== lineFeeds) return null;
  return Buffer.concat([message, DATA_END], message.length + DATA_END.length);
}

/**
 * nodemailer's SMTPConnection with a shortcut for messages already in DATA form (smtpDataOf): its
 * data stream passes them through untouched, where nodemailer would copy and scan every byte and
 * then write the terminator separately. This reaches into `_createSendStream`, an internal of
 * nodemailer 10.6 (PINNED_NODEMAILER, pinned in package.json); test/nodemailer-fast-path.test.ts fails, naming the pinned version, if it is gone
 * or changed shape, and test/smtp-transport*.test.ts run every path against real servers. (nodemailer already corks a pipelined envelope into one write.)
 */
export class PreparedSmtpConnection extends SMTPConnection {
  /** The message being sent is already in DATA form (smtpDataOf): pass it through untouched. */
  prepared = false;

  sendPrepared(
    envelope: { from: string; to: string[]; size?: number },
    message: Readable,
    prepared: boolean,
    done: (error: Error | null, info?: { response?: string }) => void,
  ): void {
    this.prepared = prepared;
    this.send(envelope, message, (error, info) => done(error, info));
  }

  /** Called by SMTPConnection once DATA is accepted; returns the stream piped into the socket. */
  _createSendStream(callback: unknown): Transform & { inByteCount: number; outByteCount: number } {
    const original = (
      SMTPConnection.prototype as unknown as {
        _createSendStream(this: SMTPConnection, callback: unknown): Transform & { inByteCount: number; outByteCount: number };
      }
    )._createSendStream;
    const stream = original.call(this, callback);
    if (this.prepared) {
      stream._transform = (chunk: Buffer, _encoding, done) => {
        stream.inByteCount += chunk.length;
        stream.outByteCount += chunk.length;
        done(null, chunk);
      };
      stream._flush = (done) => done();
    }
    return stream;
  }
}
