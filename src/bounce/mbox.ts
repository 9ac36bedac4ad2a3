// Splits an mbox (mboxrd or mboxo, RFC 4155) into its messages as raw bytes, streaming: a `From ` line
// at the start of the file or after an empty line starts a message; body lines quoted as `>From `,
// `>>From `… lose one `>`. Pure: the caller hands in the bytes (a file stream, a Buffer in a test).

/** One message of an mbox: its bytes without the `From ` line, and where it starts, for reports. */
export interface MboxMessage {
  /** 1 for the first message. */
  readonly index: number;
  /** Line number (1-based) of its `From ` line. */
  readonly line: number;
  readonly raw: Buffer;
}

const NEWLINE = 0x0a;
const FROM_LINE = Buffer.from('From ', 'latin1');
const QUOTED_FROM = /^>+From /;

function isEmptyLine(line: Buffer): boolean {
  return line.length === 0 || (line.length === 1 && line[0] === 0x0d);
}

function startsWithFrom(line: Buffer): boolean {
  return line.length >= FROM_LINE.length && line.subarray(0, FROM_LINE.length).equals(FROM_LINE);
}

/**
 * Yields each message of the mbox whose bytes `chunks` gives, in order. Both mboxrd and mboxo are
 * unquoted the mboxrd way (one `>` off any `>…From ` line): for mboxo that restores every line that was
 * quoted, and an original `>From ` line, which mboxo left as it was, cannot be told apart by anyone.
 * Bytes before the first `From ` line (not an mbox, or a stray preamble) come out as message 0 at line 1,
 * so the caller can report them; an empty preamble yields nothing.
 */
export async function* splitMbox(chunks: AsyncIterable<Uint8Array> | Iterable<Uint8Array>): AsyncGenerator<MboxMessage> {
  let pending: Buffer = Buffer.alloc(0);
  let lineNumber = 0;
  let previousEmpty = true; // the first line counts as following an empty one
  let current: { index: number; line: number; lines: Buffer[] } = { index: 0, line: 1, lines: [] };
  let count = 0;

  function finish(): MboxMessage | null {
    const { lines } = current;
    // The empty line before the next `From ` line (or at the end of the file) belongs to the mbox.
    if (lines.length > 0 && isEmptyLine(lines[lines.length - 1]!)) lines.pop();
    if (current.index === 0 && lines.every(isEmptyLine)) return null;
    const raw = Buffer.concat(lines.flatMap((line) => [line, Buffer.from([NEWLINE])]));
    return { index: current.index, line: current.line, raw };
  }

  function* take(line: Buffer): Generator<MboxMessage> {
    lineNumber += 1;
    if (previousEmpty && startsWithFrom(line)) {
      const done = finish();
      if (done !== null) yield done;
      count += 1;
      current = { index: count, line: lineNumber, lines: [] };
      previousEmpty = false;
      return;
    }
    previousEmpty = isEmptyLine(line);
    if (line[0] === 0x3e /* > */ && QUOTED_FROM.test(line.subarray(0, 64).toString('latin1'))) {
      current.lines.push(line.subarray(1));
    } else {
      current.lines.push(line);
    }
  }

  for await (const chunk of chunks) {
    const bytes = Buffer.concat([pending, Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength)]);
    let start = 0;
    for (let end = bytes.indexOf(NEWLINE, start); end >= 0; end = bytes.indexOf(NEWLINE, start)) {
      yield* take(bytes.subarray(start, end));
      start = end + 1;
    }
    pending = Buffer.from(bytes.subarray(start));
  }
  if (pending.length > 0) yield* take(pending);
  const last = finish();
  if (last !== null) yield last;
}

/** Whether these first bytes of a file look like an mbox (they start with a `From ` line). */
export function looksLikeMbox(head: Uint8Array): boolean {
  return startsWithFrom(Buffer.from(head.buffer, head.byteOffset, head.byteLength));
}
