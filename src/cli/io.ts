// What the CLI reads and writes, passed in so tests drive the real program in-process.
import type { Readable, Writable } from 'node:stream';
import type { Clock } from '../domain/clock.js';

export interface CliIo {
  readonly stdout: Writable & { isTTY?: boolean };
  readonly stderr: Writable & { isTTY?: boolean };
  readonly stdin: Readable & { isTTY?: boolean };
  readonly env: NodeJS.ProcessEnv;
  readonly cwd: string;
  /** Tests set the date a command runs at; default: the real clock. */
  readonly clock?: Clock;
}

export function processIo(): CliIo {
  // A reader that goes away (`bulletin --help | head`) is no reason to crash, least of all mid-send:
  // what is written after it left is dropped, and the command carries on.
  for (const stream of [process.stdout, process.stderr]) {
    stream.on('error', (error: NodeJS.ErrnoException) => {
      if (error.code !== 'EPIPE') throw error;
    });
  }
  return { stdout: process.stdout, stderr: process.stderr, stdin: process.stdin, env: process.env, cwd: process.cwd() };
}
