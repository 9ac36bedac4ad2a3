// Use case `subscribers import`: streams a CSV file (header row: email, name, any other column an
// attribute) into a list in one transaction: all valid rows or none. Invalid rows are reported with
// their line numbers (and optionally written to a rejects file); re-running changes nothing; an
// unsubscribed member is only reactivated when `resubscribe` is asked for. A connection lost midway
// says so: nothing was imported (the transaction rolled back), and running it again is safe.
import { createWriteStream } from 'node:fs';
import { open } from 'node:fs/promises';
import { once } from 'node:events';
import { Transform, type Readable } from 'node:stream';
import { finished } from 'node:stream/promises';
import { parse } from 'csv-parse';
import { stringify, type Stringifier } from 'csv-stringify';
import { normalizeAddress } from '../domain/address.js';
import { BulletinError } from '../domain/errors.js';
import { CommitUnknownError, isConnectionError, oneLine } from '../store/database.js';
import { printable } from '../domain/printable.js';
import { ATTRIBUTE_NAME, MAX_ATTRIBUTES, MAX_COLUMNS, MAX_FIELD_LENGTH, MAX_RECORD_BYTES } from '../domain/subscriber.js';
import { createImportStaging, emptyCounts, mergeBatch, selectSuppressedRows, type BatchCounts, type StagedRow } from '../store/subscriber-import.js';
import type { App } from './context.js';
import { requireList } from './lists.js';
import { cleanName } from './subscribers.js';

export interface ImportOptions {
  readonly list: string;
  /** Path of the CSV file, or `-` for standard input (then `stdin` must be given). */
  readonly file: string;
  readonly stdin?: Readable;
  readonly rejectsFile?: string;
  readonly resubscribe?: boolean;
  /** Checks and counts everything, then rolls back. */
  readonly dryRun?: boolean;
  /** Called every `progressEvery` rows read. */
  readonly onProgress?: (rowsRead: number) => void;
}

export interface RejectedRow {
  readonly line: number;
  readonly email: string;
  readonly reason: string;
}

export interface ImportReport extends BatchCounts {
  readonly list: string;
  readonly rowsRead: number;
  readonly valid: number;
  readonly invalid: number;
  /** The first REJECTS_KEPT rejected rows (all of them go to the rejects file). */
  readonly rejects: readonly RejectedRow[];
  readonly dryRun: boolean;
}

const BATCH_SIZE = 5000;
const REJECTS_KEPT = 1000;
const PROGRESS_EVERY = 50_000;

export async function importSubscribers(app: App, options: ImportOptions): Promise<ImportReport> {
  const input = await openInput(options);
  const rejects = new RejectCollector(options.rejectsFile);
  const totals = emptyCounts();
  let rowsRead = 0;
  let valid = 0;
  try {
    await app.db.transaction(async (tx) => {
      const list = await requireList(tx, options.list);
      await createImportStaging(tx);
      const mergeOptions = { listId: list.id, resubscribe: options.resubscribe ?? false };
      // One batch is merged while the next is parsed: the database and the parser work at once.
      let merging: Promise<void> = Promise.resolve();
      const merge = async (rows: StagedRow[]) => {
        await merging;
        merging = mergeBatch(tx, rows, mergeOptions).then((counts) => addCounts(totals, counts));
        merging.catch(() => undefined); // awaited before the next batch and at the end
      };
      let batch: StagedRow[] = [];
      for await (const row of readRows(input, options.file, (header) => rejects.setHeader(header))) {
        rowsRead++;
        if (options.onProgress && rowsRead % PROGRESS_EVERY === 0) options.onProgress(rowsRead);
        if ('reason' in row) {
          await rejects.add(row, row.fields);
          continue;
        }
        valid++;
        batch.push(row);
        if (batch.length >= BATCH_SIZE) {
          await merge(batch);
          batch = [];
        }
      }
      await merge(batch);
      await merging;
      for (const row of await selectSuppressedRows(tx)) {
        await rejects.add({ ...row, reason: 'was erased on request and must not be imported again' }, null);
      }
      if (options.dryRun) throw new DryRunRollback();
    });
  } catch (error) {
    if (!(error instanceof DryRunRollback)) {
      await rejects.close();
      if (isConnectionError(error)) throw interrupted(app, error, rowsRead);
      throw error;
    }
  } finally {
    input.destroy();
  }
  await rejects.close();
  return {
    list: options.list,
    rowsRead,
    valid: valid - totals.suppressed,
    invalid: rejects.total - totals.suppressed,
    ...totals,
    rejects: rejects.kept,
    dryRun: options.dryRun ?? false,
  };
}

/** The one sentence for an import the database went away from. */
export function interrupted(app: App, error: unknown, rowsRead: number, what = 'import'): BulletinError {
  const lost = `Lost the connection to the ${app.db.description} after ${rowsRead.toLocaleString('en-US')} rows (${oneLine(error)})`;
  return new BulletinError(
    'DATABASE_UNAVAILABLE',
    error instanceof CommitUnknownError
      ? `${lost} just as the ${what} was being saved, so it may or may not have been; running the ${what} again is safe (it changes nothing twice).`
      : `${lost}: nothing was ${what === 'import' ? 'imported' : 'changed'}, and running the ${what} again is safe.`,
    { cause: error },
  );
}

function addCounts(totals: BatchCounts, counts: BatchCounts): void {
  for (const key of Object.keys(totals) as (keyof BatchCounts)[]) totals[key] += counts[key];
}

class DryRunRollback extends Error {}

export async function openInput(options: Pick<ImportOptions, 'file' | 'stdin'>): Promise<Readable> {
  if (options.file === '-') {
    if (!options.stdin) throw new BulletinError('USAGE', 'Reading from standard input (-) is not available here.');
    return options.stdin;
  }
  try {
    const handle = await open(options.file, 'r');
    if ((await handle.stat()).isDirectory()) {
      await handle.close();
      throw new BulletinError('BAD_INPUT', `Cannot read ${options.file}: it is a directory.`);
    }
    return handle.createReadStream();
  } catch (error) {
    if (error instanceof BulletinError) throw error;
    throw new BulletinError('BAD_INPUT', `Cannot read ${options.file}: ${(error as Error).message}.`);
  }
}

export type ParsedRow = StagedRow | (RejectedRow & { fields: string[] });

/**
 * Yields one checked row per CSV record. Line numbers are where the record starts in the file, so a
 * quoted field spanning lines still points at the right place.
 */
export async function* readRows(input: Readable, fileName: string, onHeader: (names: string[]) => void): AsyncGenerator<ParsedRow> {
  // Blank lines are kept by the parser (as a record of one empty field) so that counting physical
  // lines gives each record's first line; that is cheaper than csv-parse's per-record `info`.
  const parser = input.pipe(crlfToLf()).pipe(parse({ bom: true, relax_column_count: true, record_delimiter: '\n', max_record_size: MAX_RECORD_BYTES }));
  input.on('error', (error) => parser.destroy(error));
  let header: { emailIndex: number; nameIndex: number; attributes: [number, string][]; width: number; names: string[] } | undefined;
  let nextLine = 1;
  try {
    for await (const record of parser as AsyncIterable<string[]>) {
      const line = nextLine;
      nextLine += 1 + record.reduce((sum, field) => sum + countNewlines(field), 0);
      if (record.length === 1 && record[0] === '') continue;
      if (!header) {
        header = readHeader(record, fileName);
        onHeader(record);
        continue;
      }
      if (record.every((field) => field.trim() === '')) continue;
      const rawEmail = record[header.emailIndex] ?? '';
      if (record.length !== header.width) {
        yield { line, email: rawEmail, reason: `has ${record.length} fields where the header has ${header.width}`, fields: record };
        continue;
      }
      const checked = normalizeAddress(rawEmail);
      if (!checked.ok) {
        yield { line, email: rawEmail, reason: `address ${checked.reason}`, fields: record };
        continue;
      }
      const emailIndex = header.emailIndex;
      const tooLong = record.findIndex((field, index) => index !== emailIndex && field.length > MAX_FIELD_LENGTH);
      if (tooLong >= 0) {
        const reason = `column ${tooLong + 1} ("${printable(header.names[tooLong] ?? '', 64)}") has ${record[tooLong]!.length.toLocaleString('en-US')} characters; a field may have at most ${MAX_FIELD_LENGTH.toLocaleString('en-US')}`;
        yield { line, email: rawEmail, reason, fields: record };
        continue;
      }
      const attributes: Record<string, string> = {};
      for (const [index, key] of header.attributes) {
        const value = record[index]?.trim() ?? '';
        if (value !== '') attributes[key] = value;
      }
      yield {
        line,
        email: checked.address,
        name: header.nameIndex >= 0 ? cleanName(record[header.nameIndex]) : null,
        attributes,
      };
    }
  } catch (error) {
    if (error instanceof BulletinError) throw error;
    if ((error as NodeJS.ErrnoException).syscall === 'read') {
      throw new BulletinError('BAD_INPUT', `Cannot read ${fileName}: ${(error as Error).message}.`);
    }
    const where = (error as { lines?: number }).lines;
    if ((error as { code?: string }).code === 'CSV_MAX_RECORD_SIZE') {
      throw new BulletinError(
        'BAD_INPUT',
        `${fileName}${where ? ` line ${where}` : ''}: a record is over ${MAX_RECORD_BYTES / 1024} KiB, the most one row may hold (a quote left open?); nothing was imported.`,
      );
    }
    throw new BulletinError('BAD_INPUT', `${fileName}${where ? ` line ${where}` : ''} is not valid CSV: ${(error as Error).message}; nothing was imported.`);
  }
  if (!header) throw new BulletinError('BAD_INPUT', `${fileName} is empty: it needs a header row with an "email" column.`);
}

function readHeader(record: string[], fileName: string) {
  if (record.length > MAX_COLUMNS) {
    throw new BulletinError(
      'BAD_INPUT',
      `${fileName} has ${record.length.toLocaleString('en-US')} columns in its header row; at most ${MAX_COLUMNS} (email, name and ${MAX_ATTRIBUTES} attributes); nothing was imported.`,
    );
  }
  const names = record.map((field) => field.trim());
  const lower = names.map((name) => name.toLowerCase());
  const emailIndex = lower.indexOf('email');
  if (emailIndex < 0) {
    throw new BulletinError('BAD_INPUT', `${fileName} has no "email" column in its header row (found: ${printable(names.join(', '), 200) || 'nothing'}).`);
  }
  const seen = new Set<string>();
  const attributes: [number, string][] = [];
  names.forEach((name, index) => {
    if (seen.has(lower[index] ?? '')) {
      throw new BulletinError('BAD_INPUT', `${fileName} has the column "${printable(name, 64)}" twice in its header row.`);
    }
    seen.add(lower[index] ?? '');
    if (index === emailIndex || lower[index] === 'name') return;
    if (!ATTRIBUTE_NAME.test(name)) {
      throw new BulletinError(
        'BAD_INPUT',
        `${fileName}: column ${index + 1} is named "${printable(name, 64)}", which cannot be an attribute name; rename it with letters, digits and _ only (e.g. "${printable(suggestName(name), 64)}").`,
      );
    }
    attributes.push([index, name]);
  });
  return { emailIndex, nameIndex: lower.indexOf('name'), attributes, width: names.length, names };
}

function suggestName(name: string): string {
  const suggestion = name
    .toLowerCase()
    .replace(/[^a-z0-9_]+/g, '_')
    .replace(/^_+|_+$/g, '');
  return /^[a-z_]/.test(suggestion) ? suggestion : `col_${suggestion}`;
}

function countNewlines(text: string): number {
  let count = 0;
  for (let index = text.indexOf('\n'); index >= 0; index = text.indexOf('\n', index + 1)) count++;
  return count;
}

/**
 * CRLF to LF before parsing (csv-parse miscounts lines after a blank CRLF line). A CR at the end of
 * one chunk is held back until the next chunk shows whether an LF follows.
 */
function crlfToLf(): Transform {
  let pendingCr = false;
  return new Transform({
    transform(chunk: Buffer, _encoding, done) {
      let text = (pendingCr ? '\r' : '') + chunk.toString('latin1');
      pendingCr = text.endsWith('\r');
      if (pendingCr) text = text.slice(0, -1);
      done(null, Buffer.from(text.replace(/\r\n/g, '\n'), 'latin1'));
    },
    flush(done) {
      done(null, pendingCr ? Buffer.from('\r') : null);
    },
  });
}

/** Keeps the first rejects for the report and streams all of them to the rejects file, if any. */
export class RejectCollector {
  readonly kept: RejectedRow[] = [];
  total = 0;
  private csv: Stringifier | undefined;
  private finishedWriting: Promise<void> | undefined;

  constructor(path: string | undefined) {
    if (path === undefined) return;
    const file = createWriteStream(path);
    this.csv = stringify({ record_delimiter: 'unix' });
    this.csv.pipe(file);
    this.finishedWriting = finished(file);
  }

  /** The rejects file repeats the input's header after `line` and `reason`, so it can be fixed and re-imported. */
  setHeader(names: string[]): void {
    this.csv?.write(['line', 'reason', ...names]);
  }

  async add(row: RejectedRow, fields: string[] | null): Promise<void> {
    this.total++;
    if (this.kept.length < REJECTS_KEPT) this.kept.push({ line: row.line, email: row.email, reason: row.reason });
    const record = [row.line, row.reason, ...(fields ?? [row.email])];
    if (this.csv && !this.csv.write(record)) await once(this.csv, 'drain');
  }

  async close(): Promise<void> {
    if (!this.csv) return;
    this.csv.end();
    await this.finishedWriting;
  }
}
