// A Transport that writes each message as an .eml file instead of sending it (`send --outbox DIR`,
// the demo's capture): `<DIR>/<Message-ID without <>, unsafe characters as _>.eml`, the raw bytes
// as given. Written under a temporary name and renamed, so a retry atomically replaces its own copy.
import { createHash } from 'node:crypto';
import { mkdir, rename, rm, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import type { OutgoingMessage, SendOutcome, Transport } from './transport.js';
import { outcomeOf } from './failure.js';

/** Creates DIR (and its parents) if needed. */
export async function createOutboxTransport(dir: string, options: { concurrency?: number } = {}): Promise<Transport> {
  const directory = resolve(dir);
  await mkdir(directory, { recursive: true });
  const description = `outbox:${directory}`;
  let written = 0;
  return {
    description,
    concurrency: options.concurrency ?? 8,
    async send(message: OutgoingMessage): Promise<SendOutcome> {
      const name = emlFileName(message.messageId);
      const temporary = join(directory, `.${name}.${process.pid}.${++written}.tmp`);
      try {
        await writeFile(temporary, message.raw);
        await rename(temporary, join(directory, name));
        return outcomeOf.written(name, description);
      } catch (error) {
        await rm(temporary, { force: true }).catch(() => undefined);
        // A full disk or a permission problem is worth retrying once it is fixed.
        return outcomeOf.notWritten(name, error as Error, description);
      }
    },
    async close() {},
  };
}

/**
 * The file name for a Message-ID: the id without its angle brackets, anything but letters, digits
 * and `._@-` as `_`. When that changed the id (or made it long), a short hash of the id is added,
 * so two different ids never share a file.
 */
export function emlFileName(messageId: string): string {
  const bare = messageId.trim().replace(/^<|>$/g, '');
  const safe = bare.replace(/[^A-Za-z0-9._@-]/g, '_').replace(/^\./, '_');
  if (safe === bare && safe.length > 0 && safe.length <= 200) return `${safe}.eml`;
  const hash = createHash('sha256').update(messageId).digest('hex').slice(0, 12);
  return `${safe.slice(0, 180)}-${hash}.eml`;
}
