// Keys: the secret that signs unsubscribe links and keys Message-IDs (BULLETIN_SECRET, or one generated
// once and kept in the data directory, mode 0600, so links stay valid). DKIM keys: dkim-keys.ts.
import { randomBytes } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { BulletinError } from '../domain/errors.js';
import type { Config } from './config.js';

export async function resolveSecret(config: Config): Promise<string> {
  if (config.secret !== null) return config.secret;
  const path = join(config.dataDir, 'secret');
  try {
    return (await readFile(path, 'utf8')).trim();
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') {
      throw new BulletinError('CONFIG', `Cannot read the generated secret ${path}: ${(error as Error).message}.`);
    }
  }
  const secret = randomBytes(32).toString('base64url');
  await mkdir(config.dataDir, { recursive: true });
  try {
    await writeFile(path, `${secret}\n`, { mode: 0o600, flag: 'wx' });
    return secret;
  } catch (error) {
    // Another process generated it at the same moment: use theirs.
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') return (await readFile(path, 'utf8')).trim();
    throw new BulletinError('CONFIG', `Cannot write the generated secret ${path}: ${(error as Error).message}.`);
  }
}

/** Every secret whose tokens still verify: the current one first, then BULLETIN_SECRET_PREVIOUS. */
export async function verificationSecrets(config: Config): Promise<string[]> {
  return [await resolveSecret(config), ...config.previousSecrets];
}
