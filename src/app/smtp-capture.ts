// A local SMTP server that accepts everything and keeps each message as an .eml file: the relay of
// `bulletin demo`, so a new user sees real sends without mailing anyone. Listens on 127.0.0.1 only.
import { createHash } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { SMTPServer } from 'smtp-server';

export interface SmtpCapture {
  /** smtp://127.0.0.1:<port>?tls=off */
  readonly url: string;
  readonly directory: string;
  /** Messages saved so far. */
  readonly saved: () => number;
  close(): Promise<void>;
}

export async function startSmtpCapture(directory: string): Promise<SmtpCapture> {
  await mkdir(directory, { recursive: true });
  let saved = 0;
  const server = new SMTPServer({
    disabledCommands: ['AUTH', 'STARTTLS'],
    logger: false,
    onData(stream, _session, callback) {
      const chunks: Buffer[] = [];
      stream.on('data', (chunk: Buffer) => chunks.push(chunk));
      stream.on('end', () => {
        const raw = Buffer.concat(chunks);
        const messageId = /^Message-ID:\s*<([^>]+)>/im.exec(raw.subarray(0, 8192).toString('latin1'))?.[1] ?? createHash('sha256').update(raw).digest('hex');
        const name = `${messageId.replace(/[^A-Za-z0-9@._-]/g, '_').slice(0, 150)}.eml`;
        writeFile(join(directory, name), raw).then(
          () => {
            saved++;
            callback(null, 'Saved by the bulletin demo capture');
          },
          (error: Error) => callback(Object.assign(new Error(`4.3.0 Cannot save: ${error.message}`), { responseCode: 451 })),
        );
      });
    },
  });
  server.on('error', () => undefined);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  return {
    url: `smtp://127.0.0.1:${port}?tls=off`,
    directory,
    saved: () => saved,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
