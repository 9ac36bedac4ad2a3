// Signed, opaque tokens naming one subscriber of one list (unsubscribe links, VERP bounce addresses).
// A token is verified with the secret alone, no lookup table, and shows neither id nor address.
// No I/O: the secret comes from the caller (BULLETIN_SECRET, then BULLETIN_SECRET_PREVIOUS ones).
//
// Format (version 1), deterministic synthetic-IV encryption (the SIV idea of RFC 5297, with HMAC):
//   payload    = version (1 byte) | purpose (1 byte) | listId (uint32 BE) | subscriberId (uint64 BE)
//   iv         = first 16 bytes of HMAC-SHA256(macKey, payload)          (the authentication tag)
//   ciphertext = AES-256-CTR(encKey, iv, payload)
//   token      = base64url(iv | ciphertext)                               (30 bytes, 40 characters)
// with encKey and macKey derived from the secret by HMAC-SHA256 under two fixed labels.
// Verifying decrypts, recomputes the tag and compares it in constant time.
import { createCipheriv, createHmac, timingSafeEqual, type Cipher } from 'node:crypto';
import { BulletinError } from './errors.js';

/** What a token may be used for: a VERP token is never accepted as an unsubscribe token, and back. */
export type TokenPurpose = 'unsubscribe' | 'verp';

export interface TokenSubject {
  readonly listId: number;
  readonly subscriberId: number;
}

const FORMAT_VERSION = 1;
const PURPOSE_CODES: Readonly<Record<TokenPurpose, number>> = { unsubscribe: 1, verp: 2 };
const PAYLOAD_LENGTH = 14;
const TAG_LENGTH = 16;
const TOKEN_LENGTH = 40; // base64url of TAG_LENGTH + PAYLOAD_LENGTH = 30 bytes, no padding
const TOKEN_PATTERN = /^[A-Za-z0-9_-]{40}$/;
const MAX_LIST_ID = 0xffff_ffff;

interface TokenKeys {
  /** AES-256 in ECB mode over single 16-byte blocks: the one counter block of CTR mode (see aesCtr). */
  readonly blockCipher: Cipher;
  readonly authentication: Buffer;
}

// Deriving keys costs two HMACs; a send signs one or two tokens per recipient with the same secret.
const derivedKeys = new Map<string, TokenKeys>();
const MAX_CACHED_SECRETS = 16;

function keysFor(secret: string): TokenKeys {
  let keys = derivedKeys.get(secret);
  if (keys === undefined) {
    if (secret === '') throw new BulletinError('CONFIG', 'The token secret is empty; set BULLETIN_SECRET.');
    const encryptionKey = createHmac('sha256', secret).update('bulletin token v1: encryption key').digest();
    keys = {
      blockCipher: createCipheriv('aes-256-ecb', encryptionKey, null).setAutoPadding(false),
      authentication: createHmac('sha256', secret).update('bulletin token v1: authentication key').digest(),
    };
    if (derivedKeys.size >= MAX_CACHED_SECRETS) derivedKeys.clear();
    derivedKeys.set(secret, keys);
  }
  return keys;
}

function packPayload(purpose: TokenPurpose, subject: TokenSubject): Buffer {
  const { listId, subscriberId } = subject;
  if (!Number.isInteger(listId) || listId < 0 || listId > MAX_LIST_ID) {
    throw new BulletinError('INTERNAL', `A token cannot carry list id ${listId}.`);
  }
  if (!Number.isSafeInteger(subscriberId) || subscriberId < 0) {
    throw new BulletinError('INTERNAL', `A token cannot carry subscriber id ${subscriberId}.`);
  }
  const payload = Buffer.allocUnsafe(PAYLOAD_LENGTH);
  payload[0] = FORMAT_VERSION;
  payload[1] = PURPOSE_CODES[purpose];
  payload.writeUInt32BE(listId, 2);
  payload.writeBigUInt64BE(BigInt(subscriberId), 6);
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

/** The token for (purpose, list, subscriber) under `secret`. Same input, same token. */
export function signToken(purpose: TokenPurpose, subject: TokenSubject, secret: string): string {
  const keys = keysFor(secret);
  const payload = packPayload(purpose, subject);
  const tag = authenticationTag(keys, payload);
  return Buffer.concat([tag, aesCtr(keys, tag, payload)]).toString('base64url');
}

/**
 * Who a token names, or null when it is not a valid token for `purpose` under any of `secrets`
 * (current secret first, then previous ones). Never throws on bad input: any tampering, truncation,
 * other secret or other purpose gives null.
 */
export function verifyToken(token: string, purpose: TokenPurpose, secrets: readonly string[]): TokenSubject | null {
  if (token.length !== TOKEN_LENGTH || !TOKEN_PATTERN.test(token)) return null;
  const bytes = Buffer.from(token, 'base64url');
  const tag = bytes.subarray(0, TAG_LENGTH);
  const ciphertext = bytes.subarray(TAG_LENGTH);
  for (const secret of secrets) {
    if (secret === '') continue;
    const keys = keysFor(secret);
    const payload = aesCtr(keys, tag, ciphertext);
    if (!timingSafeEqual(authenticationTag(keys, payload), tag)) continue;
    if (payload[0] !== FORMAT_VERSION || payload[1] !== PURPOSE_CODES[purpose]) return null;
    const subscriberId = payload.readBigUInt64BE(6);
    if (subscriberId > BigInt(Number.MAX_SAFE_INTEGER)) return null;
    return { listId: payload.readUInt32BE(2), subscriberId: Number(subscriberId) };
  }
  return null;
}
