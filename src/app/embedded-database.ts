// Use cases `db status` and `db stop`: whether the embedded PostgreSQL of the data directory runs and
// for how many bulletin processes, and stopping it (it stops by itself after the last process; one
// killed with -9 leaves it running). Neither starts it; on a PostgreSQL server there is nothing to do.
import { BulletinError } from '../domain/errors.js';
import { embeddedStatus, stopEmbeddedServer } from '../store/embedded-server.js';
import type { Config } from './config.js';

export interface EmbeddedDatabaseStatus {
  /** The cluster directory (<data dir>/postgres). */
  readonly directory: string;
  readonly exists: boolean;
  readonly running: boolean;
  readonly pid: number | null;
  /** bulletin processes using it now; null when the server did not answer the question. */
  readonly processes: number | null;
}

function embeddedDataDir(config: Config): string {
  if (config.database.kind !== 'embedded') {
    throw new BulletinError(
      'USAGE',
      'DATABASE_URL is set: bulletin uses that PostgreSQL server, which it neither starts nor stops (`db status` and `db stop` are for the embedded database).',
    );
  }
  return config.database.dataDir;
}

export async function embeddedDatabaseStatus(config: Config): Promise<EmbeddedDatabaseStatus> {
  const status = await embeddedStatus(embeddedDataDir(config));
  return { directory: status.clusterDir, exists: status.exists, running: status.pid !== null, pid: status.pid, processes: status.processes };
}

/** Stops the embedded server now; false when it was not running. */
export async function stopEmbeddedDatabase(config: Config): Promise<{ directory: string; stopped: boolean; processes: number | null }> {
  const before = await embeddedDatabaseStatus(config);
  return { directory: before.directory, stopped: await stopEmbeddedServer(embeddedDataDir(config)), processes: before.processes };
}
