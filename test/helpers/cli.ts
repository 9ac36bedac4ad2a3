// Runs the real `bulletin` command line in-process (no child process), capturing what it prints.
import { PassThrough, Readable } from 'node:stream';
import type { Clock } from '../../src/domain/clock.js';
import { main } from '../../src/cli/main.js';

export interface CliResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

export interface CliOptions {
  readonly env: Record<string, string>;
  readonly cwd: string;
  readonly stdin?: string;
  /** The date the command runs at (default: the real clock). */
  readonly clock?: Clock;
}

export async function runCli(args: readonly string[], options: CliOptions): Promise<CliResult> {
  return startCli(args, options).done;
}

/** A command running in-process: what it printed so far, and its end. */
export interface RunningCli {
  stdout(): string;
  stderr(): string;
  readonly done: Promise<CliResult>;
}

/** Starts the command without waiting for it, so a test can watch it (and its servers) while it runs. */
export function startCli(args: readonly string[], options: CliOptions): RunningCli {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  stdout.on('data', (chunk: Buffer) => out.push(chunk));
  stderr.on('data', (chunk: Buffer) => err.push(chunk));
  const printed = () => ({ stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8') });
  const done = main(['node', 'bulletin', ...args], {
    stdout,
    stderr,
    stdin: Readable.from([options.stdin ?? '']),
    env: options.env,
    cwd: options.cwd,
    ...(options.clock ? { clock: options.clock } : {}),
  }).then((code) => ({ code, ...printed() }));
  return { stdout: () => printed().stdout, stderr: () => printed().stderr, done };
}

/** Runs and insists on success, returning stdout (parsed when `--json` was given). */
export async function runOk(args: readonly string[], options: CliOptions) {
  const result = await runCli(args, options);
  if (result.code !== 0) {
    throw new Error(`bulletin ${args.join(' ')} exited ${result.code}: ${result.stderr}`);
  }
  return args.includes('--json') ? (JSON.parse(result.stdout) as unknown) : result.stdout;
}

/**
 * The environment for a `bulletin` child process on the test's database: this process's environment
 * with the test's variables over it, and no DATABASE_URL unless the test's database is a server one
 * (a blank DATABASE_URL is a configuration error, not "use the embedded database").
 */
export function childEnv(env: Record<string, string>, extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const merged: NodeJS.ProcessEnv = { ...process.env, ...env, ...extra };
  if (env.DATABASE_URL === undefined && extra.DATABASE_URL === undefined) delete merged.DATABASE_URL;
  return merged;
}
