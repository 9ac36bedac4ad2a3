// Message-IDs that are stable per (bulletin, subscriber): every retry of one recipient's message
// carries the same one, so receivers can drop duplicates, and no two recipients ever share one.
// Keyed by the bulletin secret, so an id reveals neither the address nor the subscriber id.
import { createHmac } from 'node:crypto';

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
 * `<32 hex digits@domain>`: the first 128 bits of HMAC-SHA256 over (bulletin key, subscriber id)
 * under a key derived from the secret. Rotating the secret changes the ids of later messages
 * (including In-Reply-To links to bulletins sent before the rotation).
 */
export function stableMessageId(bulletinKey: string, subscriberId: number, secret: string, domain: string): string {
  const digest = createHmac('sha256', messageIdKey(secret))
    .update(`${bulletinKey.length}:${bulletinKey}:${subscriberId}`)
    .digest('hex')
    .slice(0, 32);
  return `<${digest}@${domain}>`;
}
