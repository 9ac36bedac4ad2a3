// Message-IDs that are stable per (bulletin, subscriber): every retry of one recipient's message
// carries the same one, so receivers can drop duplicates, and no two recipients ever share one.
// Keyed by the secret and the installation id, so an id reveals neither the address nor the
// subscriber id, and two installations never make the same one, even sharing a secret.
import { createHmac } from 'node:crypto';
import type { SigningKey } from '../domain/token.js';

/**
 * How a bulletin's Message-IDs are made (stored with it): 1 from the secret alone, as bulletin 0.1
 * did (bulletins begun then keep it, so their retries keep their ids); 2 with the installation id.
 */
export type MessageIdVersion = 1 | 2;
export const MESSAGE_ID_VERSION: MessageIdVersion = 2;

const derivedKeys = new Map<string, Buffer>();

function messageIdKey(secret: string): Buffer {
  let key = derivedKeys.get(secret);
  if (key === undefined) {
    key = createHmac('sha256', secret).update('bulletin message-id v1').digest();
    if (derivedKeys.size >= 16) derivedKeys.clear();
    derivedKeys.set(secret, key);
  }
  return key;
}

/**
 * `<32 hex digits@domain>`: the first 128 bits of HMAC-SHA256 over (installation id, bulletin key,
 * subscriber id) — without the installation id for version 1 — under a key derived from the
 * secret. Rotating the secret changes the ids of later messages (including In-Reply-To links to
 * bulletins sent before the rotation).
 */
export function stableMessageId(
  bulletinKey: string,
  subscriberId: number,
  key: SigningKey,
  domain: string,
  version: MessageIdVersion = MESSAGE_ID_VERSION,
): string {
  const scope = version === 1 ? '' : `v2:${key.installationId.length}:${key.installationId}:`;
  const digest = createHmac('sha256', messageIdKey(key.secret))
    .update(`${scope}${bulletinKey.length}:${bulletinKey}:${subscriberId}`)
    .digest('hex')
    .slice(0, 32);
  return `<${digest}@${domain}>`;
}
