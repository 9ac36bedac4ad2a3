// Signed, opaque tokens naming one subscriber of one list of one installation (unsubscribe links,
// VERP bounce addresses). A token is verified with the keys alone, no lookup table, and shows
// neither id nor address. No I/O: the secret and installation id come from the caller.
//
// Format (version 3), deterministic synthetic-IV encryption (the SIV idea of RFC 5297, with HMAC):
//   payload    = version (1 byte) | purpose (1 byte) | listId (uint32 BE) | subscriberId (uint48 BE)
//                | subscription (uint16 BE: the membership's re-subscriptions, modulo 65536)
//   iv         = first 16 bytes of HMAC-SHA256(macKey, payload)          (the authentication tag)
//   ciphertext = AES-256-CTR(encKey, iv, payload)
//   token      = base64url(iv | ciphertext)                               (30 bytes, 40 characters)
// with encKey and macKey derived from the secret and the installation id by HMAC-SHA256 under two
// fixed labels: another installation's token never verifies, even under the same secret.
// A version-3 token names the subscription it was made for, so a re-subscription puts older links out
// of date. Version 2 (the same keys, subscriberId as uint64, no subscription) is in mail sent before;
// it verifies as subscription 0, the count every membership had then.
// Version 1 (bulletin 0.1) derived the keys from the secret alone; such tokens are in mail already
// sent, and verify under the legacy secrets the caller names. Verifying decrypts, recomputes the
// tag and compares it in constant time.
import { createCipheriv, createHmac, timingSafeEqual, type Cipher } from 'node:crypto';
import { BulletinError } from './errors.js';

/** What a token may be used for: a VERP token is never accepted as an unsubscribe token, and back. */
export type TokenPurpose = 'unsubscribe' | 'verp';

export interface TokenSubject {
  readonly listId: number;
  readonly subscriberId: number;
  /**
   * Which subscription of this membership the token was made for: its count of re-subscriptions
   * (modulo SUBSCRIPTION_MODULUS) when signed. 0 when absent, and for tokens older than version 3.
   */
  readonly subscription?: number;
}

/** A token carries the subscription count in 16 bits: after 65,536 re-subscriptions the count comes round again. */
export const SUBSCRIPTION_MODULUS = 0x1_0000;

/** What signs links (and keys Message-IDs): the secret, and the installation they belong to. */
export interface SigningKey {
  readonly secret: string;
  readonly installationId: string;
}

/** Everything a token may verify under: signing keys (the current one first), and legacy secrets for version 1. */
export interface TokenKeyring {
  readonly keys: readonly SigningKey[];
  /** Secrets whose version-1 tokens (made before installations had an id) still verify; none for a new installation. */
  readonly legacySecrets: readonly string[];
}

const FORMAT_VERSION = 3;
/** Version 2: subscriberId as uint64 BE and no subscription; verified, no longer made. */
const UNCOUNTED_VERSION = 2;
const LEGACY_VERSION = 1;
const PURPOSE_CODES: Readonly<Record<TokenPurpose, number>> = { unsubscribe: 1, verp: 2 };
const PAYLOAD_LENGTH = 14;
const TAG_LENGTH = 16;
const TOKEN_LENGTH = 40; // base64url of TAG_LENGTH + PAYLOAD_LENGTH = 30 bytes, no padding
const TOKEN_PATTERN = /^[A-Za-z0-9_-]{40}$/;
const MAX_LIST_ID = 0xffff_ffff;
const MAX_COUNTED_SUBSCRIBER_ID = 2 ** 48 - 1;

interface TokenKeys {
  /** AES-256 in ECB mode over single 16-byte blocks: the one counter block of CTR mode (see aesCtr). */
  readonly blockCipher: Cipher;
  readonly authentication: Buffer;
}

// Deriving keys costs two HMACs; a send signs one or two tokens per recipient with the same key.
const derivedKeys = new Map<string, TokenKeys>();
const MAX_CACHED_SECRETS = 16;

/** Version 2 keys for (secret, installation id); version 1 keys when the id is null. */
function keysFor(secret: string, installationId: string | null): TokenKeys {
  const cacheKey = `${installationId ?? ''}\u0000${secret}`;
  let keys = derivedKeys.get(cacheKey);
  if (keys === undefined) {
    if (secret === '') throw new BulletinError('CONFIG', 'The token secret is empty; set BULLETIN_SECRET.');
    const label = (what: string) => (installationId === null ? `bulletin token v1: ${what}` : `bulletin token v2: ${what}\u0000${installationId}`);
    const encryptionKey = createHmac('sha256', secret).update(label('encryption key')).digest();
    keys = {
      blockCipher: createCipheriv('aes-256-ecb', encryptionKey, null).setAutoPadding(false),
      authentication: createHmac('sha256', secret).update(label('authentication key')).digest(),
    };
    if (derivedKeys.size >= MAX_CACHED_SECRETS) derivedKeys.clear();
    derivedKeys.set(cacheKey, keys);
  }
  return keys;
}

function packPayload(version: number, purpose: TokenPurpose, subject: TokenSubject): Buffer {
  const { listId, subscriberId } = subject;
  if (!Number.isInteger(listId) || listId < 0 || listId > MAX_LIST_ID) {
    throw new BulletinError('INTERNAL', `A token cannot carry list id ${listId}.`);
  }
  if (!Number.isSafeInteger(subscriberId) || subscriberId < 0) {
    throw new BulletinError('INTERNAL', `A token cannot carry subscriber id ${subscriberId}.`);
  }
  const payload = Buffer.allocUnsafe(PAYLOAD_LENGTH);
  payload[0] = version;
  payload[1] = PURPOSE_CODES[purpose];
  payload.writeUInt32BE(listId, 2);
  if (version === FORMAT_VERSION) {
    if (subscriberId > MAX_COUNTED_SUBSCRIBER_ID) throw new BulletinError('INTERNAL', `A token cannot carry subscriber id ${subscriberId}.`);
    const subscription = subject.subscription ?? 0;
    if (!Number.isSafeInteger(subscription) || subscription < 0) throw new BulletinError('INTERNAL', `A token cannot carry subscription ${subscription}.`);
    payload.writeUIntBE(subscriberId, 6, 6);
    payload.writeUInt16BE(subscription % SUBSCRIPTION_MODULUS, 12);
  } else {
    payload.writeBigUInt64BE(BigInt(subscriberId), 6);
  }
  return payload;
}

function authenticationTag(keys: TokenKeys, payload: Buffer): Buffer {
  return createHmac('sha256', keys.authentication).update(payload).digest().subarray(0, TAG_LENGTH);
}

/**
 * AES-256-CTR of a payload shorter than one block: the payload XOR AES(key, iv). Encrypting the
 * block through one long-lived ECB cipher gives the same bytes as a fresh CTR cipher per token at a
 * fifth of the cost (ECB keeps no state between whole blocks).
 */
function aesCtr(keys: TokenKeys, iv: Buffer, input: Buffer): Buffer {
  const keystream = keys.blockCipher.update(iv);
  const output = Buffer.allocUnsafe(input.length);
  for (let i = 0; i < input.length; i++) output[i] = input[i]! ^ keystream[i]!;
  return output;
}

function seal(version: number, keys: TokenKeys, purpose: TokenPurpose, subject: TokenSubject): string {
  const payload = packPayload(version, purpose, subject);
  const tag = authenticationTag(keys, payload);
  return Buffer.concat([tag, aesCtr(keys, tag, payload)]).toString('base64url');
}

/** The token for (purpose, list, subscriber) of this installation. Same input, same token. */
export function signToken(purpose: TokenPurpose, subject: TokenSubject, key: SigningKey): string {
  return seal(FORMAT_VERSION, keysFor(key.secret, key.installationId), purpose, subject);
}

/** A version-2 token, as bulletin made them before links named the subscription: what mail sent then holds. */
export function signUncountedToken(purpose: TokenPurpose, subject: TokenSubject, key: SigningKey): string {
  return seal(UNCOUNTED_VERSION, keysFor(key.secret, key.installationId), purpose, subject);
}

/** A version-1 token, as bulletin 0.1 made them (secret only): what mail sent before the upgrade holds. */
export function signLegacyToken(purpose: TokenPurpose, subject: TokenSubject, secret: string): string {
  return seal(LEGACY_VERSION, keysFor(secret, null), purpose, subject);
}

/** The subject, if the token opens under these keys as this version and purpose; null otherwise. */
function open(tag: Buffer, ciphertext: Buffer, keys: TokenKeys, version: number, purpose: TokenPurpose): TokenSubject | null | 'no' {
  const payload = aesCtr(keys, tag, ciphertext);
  if (!timingSafeEqual(authenticationTag(keys, payload), tag)) return 'no';
  if (payload[1] !== PURPOSE_CODES[purpose]) return null;
  if (version !== LEGACY_VERSION && payload[0] === FORMAT_VERSION) {
    return { listId: payload.readUInt32BE(2), subscriberId: payload.readUIntBE(6, 6), subscription: payload.readUInt16BE(12) };
  }
  const expected = version === LEGACY_VERSION ? LEGACY_VERSION : UNCOUNTED_VERSION;
  if (payload[0] !== expected) return null;
  const subscriberId = payload.readBigUInt64BE(6);
  if (subscriberId > BigInt(Number.MAX_SAFE_INTEGER)) return null;
  return { listId: payload.readUInt32BE(2), subscriberId: Number(subscriberId), subscription: 0 };
}

/**
 * Who a token names, or null when it is not a valid token for `purpose` under the keyring (its
 * signing keys as version 3 or 2, then its legacy secrets as version 1). Never throws on bad input: any
 * tampering, truncation, other secret, other installation or other purpose gives null.
 */
export function verifyToken(token: string, purpose: TokenPurpose, keyring: TokenKeyring): TokenSubject | null {
  if (token.length !== TOKEN_LENGTH || !TOKEN_PATTERN.test(token)) return null;
  const bytes = Buffer.from(token, 'base64url');
  const tag = bytes.subarray(0, TAG_LENGTH);
  const ciphertext = bytes.subarray(TAG_LENGTH);
  const attempts: [string, string | null, number][] = [
    ...keyring.keys.map((key): [string, string | null, number] => [key.secret, key.installationId, FORMAT_VERSION]),
    ...keyring.legacySecrets.map((secret): [string, string | null, number] => [secret, null, LEGACY_VERSION]),
  ];
  for (const [secret, installationId, version] of attempts) {
    if (secret === '') continue;
    const opened = open(tag, ciphertext, keysFor(secret, installationId), version, purpose);
    if (opened !== 'no') return opened;
  }
  return null;
}
