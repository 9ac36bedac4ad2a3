// Keys: the installation's id and secret, kept in its database so every process on every machine
// signs the same links and makes the same Message-IDs (BULLETIN_SECRET overrides the secret;
// BULLETIN_SECRET_PREVIOUS ones still verify). DKIM keys: dkim-keys.ts.
//
// Before installations existed, each working directory generated its own `.bulletin/secret`. The
// first process after the upgrade that finds the database without a secret adopts its file's (so
// links already sent keep working); a file holding another secret is kept as an adopted one, whose
// old-style links still verify.
import { randomBytes, randomUUID } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { BulletinError } from '../domain/errors.js';
import type { SigningKey, TokenKeyring } from '../domain/token.js';
import { adoptSecret, readInstallation, selectAdoptedSecrets, settleInstallation } from '../store/installation.js';
import type { App } from './context.js';

export interface InstallationKeys {
  /** Signs this installation's links and keys its Message-IDs. */
  readonly signing: SigningKey;
  /** What a link may verify under: the signing key, BULLETIN_SECRET_PREVIOUS, and old-style links. */
  readonly keyring: TokenKeyring;
}

const known = new WeakMap<App, InstallationKeys>();

/** The installation's keys, read from its database (and filled in there by the first process that needs them). */
export async function installationKeys(app: App): Promise<InstallationKeys> {
  const cached = known.get(app);
  if (cached) return cached;
  const keys = await loadKeys(app);
  known.set(app, keys);
  return keys;
}

async function loadKeys(app: App): Promise<InstallationKeys> {
  const fileSecret = await readSecretFile(app);
  let row = await readInstallation(app.db);
  const needSecret = app.config.secret === null && !row?.secret;
  if (row === null || row.id === null || needSecret) {
    row = await settleInstallation(app.db, {
      id: randomUUID(),
      secret: needSecret ? (fileSecret ?? randomBytes(32).toString('base64url')) : null,
    });
  }
  const installationId = row.id as string;
  const secret = app.config.secret ?? (row.secret as string);
  let adopted: string[] = [];
  if (row.legacyLinks) {
    adopted = await selectAdoptedSecrets(app.db);
    if (fileSecret !== null && fileSecret !== row.secret && fileSecret !== secret && !adopted.includes(fileSecret)) {
      await adoptSecret(app.db, fileSecret);
      adopted.push(fileSecret);
    }
  }
  const previous = app.config.previousSecrets;
  return {
    signing: { secret, installationId },
    keyring: {
      keys: [secret, ...previous].map((each) => ({ secret: each, installationId })),
      legacySecrets: row.legacyLinks ? [...new Set([secret, ...previous, ...(row.secret ? [row.secret] : []), ...adopted])] : [],
    },
  };
}

/** The secret an earlier bulletin generated in this data directory, if any. */
async function readSecretFile(app: App): Promise<string | null> {
  const path = join(app.config.dataDir, 'secret');
  try {
    return (await readFile(path, 'utf8')).trim() || null;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw new BulletinError('CONFIG', `Cannot read ${path}: ${(error as Error).message}.`);
  }
}
