// A Transport that writes each message as an .eml file instead of sending it (`send --outbox DIR`,
// the demo's capture): named after its Message-ID, so a retry overwrites its own earlier copy.
import { mkdir, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import type { OutgoingMessage, SendOutcome, Transport } from './transport.js';

export async function createOutboxTransport(dir: string): Promise<Transport> {
  const directory = resolve(dir);
  await mkdir(directory, { recursive: true });
  const description = `outbox:${directory}`;
  return {
    description,
    concurrency: 8,
    async send(message: OutgoingMessage): Promise<SendOutcome> {
      const name = `${message.messageId.replace(/^<|>$/g, '').replace(/[^A-Za-z0-9._@-]/g, '_')}.eml`;
      try {
        await writeFile(join(directory, name), message.raw);
        return { kind: 'sent', reply: `250 written to ${name}`, relay: description };
      } catch (error) {
        // A full disk or a permission problem is worth retrying once it is fixed.
        return { kind: 'deferred', reply: `cannot write ${name}: ${(error as Error).message}`, relay: description };
      }
    },
    async close() {},
  };
}
