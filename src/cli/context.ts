// What every command needs: the configuration from global flags, environment and .env, and a way
// to run one use case on an opened app that is always closed afterwards.
import type { Command } from 'commander';
import { loadConfig, type Config } from '../app/config.js';
import { withApp, type App } from '../app/context.js';
import type { DatabaseOutage } from '../send/database-outage.js';
import type { CliIo } from './io.js';

export interface CliContext {
  readonly io: CliIo;
  /** Exit status when the command returns normally (e.g. 130 after a graceful Ctrl-C). */
  exitCode: number;
  config(): Config;
  /**
   * Opens the app (waiting out an unreachable database when given an `outage`: sends), runs `work`,
   * closes it, and then `closeAfter` (the command's metrics server), whatever happened.
   */
  run<T>(
    work: (app: App) => Promise<T>,
    options?: { skipMigrationCheck?: boolean; outage?: DatabaseOutage; closeAfter?: { close(): Promise<void> } },
  ): Promise<T>;
  /**
   * Set by a command logging JSON lines (--log-format json): the sentences it would write on stderr
   * (notices, the error it ends with) become lines of that log. Null: plain lines on stderr.
   */
  logLine: ((level: 'info' | 'error', line: string) => void) | null;
}

export function createContext(io: CliIo, program: Command): CliContext {
  let config: Config | undefined;
  const context: CliContext = {
    io,
    exitCode: 0,
    logLine: null,
    config() {
      if (!config) {
        const flags = program.opts<{ databaseUrl?: string; dataDir?: string }>();
        config = loadConfig({
          env: io.env,
          cwd: io.cwd,
          overrides: {
            ...(flags.databaseUrl === undefined ? {} : { databaseUrl: flags.databaseUrl }),
            ...(flags.dataDir === undefined ? {} : { dataDir: flags.dataDir }),
          },
        });
      }
      return config;
    },
    run(work, options) {
      // A configuration error is thrown from the promise too, so that `closeAfter` is still closed.
      const running = Promise.resolve().then(() =>
        withApp(
          context.config(),
          {
            notice: (line) => (context.logLine ? context.logLine('info', line) : io.stderr.write(`${line}\n`)),
            skipMigrationCheck: options?.skipMigrationCheck ?? false,
            ...(options?.outage ? { outage: options.outage } : {}),
            ...(io.clock ? { clock: io.clock } : {}),
          },
          work,
        ),
      );
      const closeAfter = options?.closeAfter;
      return closeAfter ? running.finally(() => closeAfter.close()) : running;
    },
  };
  return context;
}
