// Keys: the secret that signs unsubscribe links and keys Message-IDs (BULLETIN_SECRET, or one generated
// once and kept in the data directory, mode 0600, so links stay valid), and the DKIM private key.
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

/** The DKIM key named by the configuration, read once per send; null when DKIM is not configured. */
export async function loadDkim(config: Config): Promise<{ domain: string; selector: string; privateKey: string } | null> {
  if (!config.dkim) return null;
  try {
    const privateKey = await readFile(config.dkim.privateKeyFile, 'utf8');
    return { domain: config.dkim.domain, selector: config.dkim.selector, privateKey };
  } catch (error) {
    throw new BulletinError('CONFIG', `Cannot read DKIM_PRIVATE_KEY_FILE ${config.dkim.privateKeyFile}: ${(error as Error).message}.`);
  }
}
