// The DKIM keys named by the configuration (DKIM_DOMAIN, DKIM_SELECTOR, DKIM_PRIVATE_KEY_FILE: one
// key, or an RSA and an Ed25519 key in pairs), read once per send, and what the send confirmation
// says about them: the signatures and whether d= aligns with the From domain (DMARC).
import { readFile } from 'node:fs/promises';
import { BulletinError } from '../domain/errors.js';
import { dkimAlignment, type DkimOptions } from '../render/index.js';
import type { Config } from './config.js';

export async function loadDkim(config: Config): Promise<DkimOptions[] | null> {
  if (!config.dkim) return null;
  const keys: DkimOptions[] = [];
  for (const key of config.dkim.keys) {
    try {
      keys.push({ domain: config.dkim.domain, selector: key.selector, privateKey: await readFile(key.privateKeyFile, 'utf8') });
    } catch (error) {
      throw new BulletinError('CONFIG', `Cannot read DKIM_PRIVATE_KEY_FILE ${key.privateKeyFile}: ${(error as Error).message}.`);
    }
  }
  return keys;
}

/** One line for the send confirmation, and a warning when d= does not align with From. */
export function describeDkim(
  signatures: readonly { readonly domain: string; readonly selector: string; readonly algorithm: string }[],
  fromAddress: string,
): { line: string; warning: string | null } {
  if (signatures.length === 0) return { line: 'not signed (set DKIM_DOMAIN, DKIM_SELECTOR, DKIM_PRIVATE_KEY_FILE)', warning: null };
  const domain = signatures[0]!.domain;
  const fromDomain = fromAddress.slice(fromAddress.lastIndexOf('@') + 1);
  const alignment = dkimAlignment(domain, fromAddress);
  const keys = signatures.map((signature) => `${signature.algorithm} s=${signature.selector}`).join(', ');
  const aligned = alignment === 'none' ? `NOT aligned with From ${fromDomain}` : `aligned with From ${fromDomain} (${alignment})`;
  return {
    line: `d=${domain} (${keys}), ${aligned}`,
    warning:
      alignment === 'none'
        ? `DKIM signs as d=${domain}, which does not align with the From domain ${fromDomain}: receivers checking DMARC will not count the signature; sign with DKIM_DOMAIN=${fromDomain} (or a domain sharing its organizational domain).`
        : null,
  };
}
