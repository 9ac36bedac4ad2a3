// Ctrl-C and SIGTERM for long-running commands: wait for the first one (a second quits at once), or
// sleep unless one comes.
import type { CliContext } from './context.js';

/**
 * Waits for Ctrl-C or SIGTERM. A second one while the server finishes the requests in progress
 * exits at once, until `release` is called.
 */
export function firstSignal(
  context: CliContext,
  say: (line: string) => void = (line) => context.io.stderr.write(`${line}\n`),
): Promise<{ signal: NodeJS.Signals; release: () => void }> {
  return new Promise((resolveSignal) => {
    const again = (second: NodeJS.Signals) => process.exit(second === 'SIGINT' ? 130 : 143);
    const release = () => {
      process.off('SIGINT', again);
      process.off('SIGTERM', again);
    };
    const onSignal = (signal: NodeJS.Signals) => {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
      process.on('SIGINT', again);
      process.on('SIGTERM', again);
      say(`Stopping: finishing the requests in progress (${signal === 'SIGINT' ? 'Ctrl-C' : signal} again to quit at once)…`);
      resolveSignal({ signal, release });
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
  });
}

/** Sleeps; resolves true at once if Ctrl-C or SIGTERM comes first. */
export function interruptibleSleep(ms: number): Promise<boolean> {
  return new Promise((resolve) => {
    const onSignal = () => finish(true);
    const timer = setTimeout(() => finish(false), ms);
    function finish(interrupted: boolean) {
      clearTimeout(timer);
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
      resolve(interrupted);
    }
    process.once('SIGINT', onSignal);
    process.once('SIGTERM', onSignal);
  });
}

/**
 * Keeps a long-running server (`serve`, `inbound`) up until Ctrl-C or SIGTERM, then closes it, says
 * so, and sets the exit status: 130 after Ctrl-C, 0 after SIGTERM.
 */
export async function serveUntilSignal(
  context: CliContext,
  server: { close(): Promise<void> },
  say: (line: string) => void = (line) => context.io.stderr.write(`${line}\n`),
): Promise<void> {
  const { signal, release } = await firstSignal(context, say);
  try {
    await server.close();
  } finally {
    release();
  }
  say('Stopped.');
  context.exitCode = signal === 'SIGINT' ? 130 : 0;
}

/**
 * Listens for Ctrl-C and SIGTERM from now on, for a command that loops until one comes (`status
 * --watch`): `signalled` resolves with the first; `release` stops listening.
 */
export function untilSignal(): { readonly signalled: Promise<NodeJS.Signals>; release(): void } {
  let onSignal: (signal: NodeJS.Signals) => void = () => undefined;
  const signalled = new Promise<NodeJS.Signals>((resolve) => {
    onSignal = (signal) => resolve(signal);
  });
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  return {
    signalled,
    release() {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
    },
  };
}
