// Unsubscribe and VERP tokens: they round-trip, resist tampering, honour rotation, purpose and
// installation, reveal nothing readable about the subscriber they name, and tokens made before
// installations had an id (version 1) verify only where the caller allows them. A token names the
// subscription it was made for; those made before it did (version 2) verify as subscription 0.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { signLegacyToken, signToken, signUncountedToken, verifyToken, type SigningKey, type TokenKeyring } from '../src/domain/token.js';

const SECRET = 'current-secret-0123456789abcdef';
const PREVIOUS = 'previous-secret-fedcba9876543210';
const subject = { listId: 7, subscriberId: 123456, subscription: 0 };
const HERE = '6f1c1a52-8a4e-4d0b-9a51-0c1e2f3a4b5c';
const ELSEWHERE = 'b7d2e9f0-1c3a-4e5b-8d6f-7a8b9c0d1e2f';

/** This installation's signing key under `secret`. */
function key(secret: string, installationId = HERE): SigningKey {
  return { secret, installationId };
}

/** Verifies under these secrets of this installation, no legacy ones. */
function ring(...secrets: string[]): TokenKeyring {
  return { keys: secrets.map((secret) => key(secret)), legacySecrets: [] };
}

function flipBit(token: string, bit: number): string {
  const bytes = Buffer.from(token, 'base64url');
  bytes[bit >> 3]! ^= 1 << (bit & 7);
  return bytes.toString('base64url');
}

test('a token round-trips to its list and subscriber', () => {
  const token = signToken('unsubscribe', subject, key(SECRET));
  assert.match(token, /^[A-Za-z0-9_-]{40}$/);
  assert.deepEqual(verifyToken(token, 'unsubscribe', ring(SECRET)), subject);
});

test('large ids and subscription counts round-trip too; a subscriber id beyond 48 bits is refused', () => {
  const big = { listId: 0xffff_ffff, subscriberId: 2 ** 48 - 1, subscription: 65_535 };
  assert.deepEqual(verifyToken(signToken('verp', big, key(SECRET)), 'verp', ring(SECRET)), big);
  assert.deepEqual(
    verifyToken(signToken('verp', { ...big, subscription: 65_537 }, key(SECRET)), 'verp', ring(SECRET)),
    { ...big, subscription: 1 },
    'the count is kept modulo 65,536',
  );
  assert.throws(() => signToken('verp', { ...big, subscriberId: 2 ** 48 }, key(SECRET)), { name: 'BulletinError', code: 'INTERNAL' });
});

test('a token names the subscription it was made for', () => {
  const first = signToken('unsubscribe', subject, key(SECRET));
  const second = signToken('unsubscribe', { ...subject, subscription: 1 }, key(SECRET));
  assert.notEqual(first, second);
  assert.equal(verifyToken(first, 'unsubscribe', ring(SECRET))?.subscription, 0);
  assert.equal(verifyToken(second, 'unsubscribe', ring(SECRET))?.subscription, 1);
  assert.equal(signToken('unsubscribe', { listId: 7, subscriberId: 123456 }, key(SECRET)), first, 'no count is subscription 0');
});

test('a version-2 token (made before tokens named the subscription) verifies as subscription 0', () => {
  const old = signUncountedToken('unsubscribe', subject, key(SECRET));
  assert.match(old, /^[A-Za-z0-9_-]{40}$/);
  assert.notEqual(old, signToken('unsubscribe', subject, key(SECRET)));
  assert.deepEqual(verifyToken(old, 'unsubscribe', ring(SECRET)), subject);
  const huge = { listId: 7, subscriberId: Number.MAX_SAFE_INTEGER, subscription: 0 };
  assert.deepEqual(verifyToken(signUncountedToken('verp', huge, key(SECRET)), 'verp', ring(SECRET)), huge);
  assert.equal(verifyToken(old, 'verp', ring(SECRET)), null, 'its purpose still counts');
  assert.equal(verifyToken(signUncountedToken('unsubscribe', subject, key(SECRET, ELSEWHERE)), 'unsubscribe', ring(SECRET)), null);
});

test('signing is deterministic and distinguishes subscribers and lists', () => {
  const token = signToken('unsubscribe', subject, key(SECRET));
  assert.equal(signToken('unsubscribe', subject, key(SECRET)), token);
  assert.notEqual(signToken('unsubscribe', { listId: 7, subscriberId: 123457 }, key(SECRET)), token);
  assert.notEqual(signToken('unsubscribe', { listId: 8, subscriberId: 123456 }, key(SECRET)), token);
});

test('flipping any single bit makes the token invalid', () => {
  const token = signToken('unsubscribe', subject, key(SECRET));
  for (let bit = 0; bit < 30 * 8; bit++) {
    assert.equal(verifyToken(flipBit(token, bit), 'unsubscribe', ring(SECRET)), null, `bit ${bit}`);
  }
});

test('truncated, extended or malformed tokens are rejected', () => {
  const token = signToken('unsubscribe', subject, key(SECRET));
  assert.equal(verifyToken(token.slice(0, -1), 'unsubscribe', ring(SECRET)), null);
  assert.equal(verifyToken(token.slice(0, 20), 'unsubscribe', ring(SECRET)), null);
  assert.equal(verifyToken(`${token}A`, 'unsubscribe', ring(SECRET)), null);
  assert.equal(verifyToken('', 'unsubscribe', ring(SECRET)), null);
  assert.equal(verifyToken(`${token.slice(0, -1)}=`, 'unsubscribe', ring(SECRET)), null);
  assert.equal(verifyToken(`${token.slice(0, -1)}.`, 'unsubscribe', ring(SECRET)), null);
});

test('a token made with another secret is rejected', () => {
  const token = signToken('unsubscribe', subject, key('some-other-secret-entirely'));
  assert.equal(verifyToken(token, 'unsubscribe', ring(SECRET)), null);
});

test('a token made with a previous secret still verifies during rotation', () => {
  const token = signToken('unsubscribe', subject, key(PREVIOUS));
  assert.deepEqual(verifyToken(token, 'unsubscribe', ring(SECRET, PREVIOUS)), subject);
  assert.equal(verifyToken(token, 'unsubscribe', ring(SECRET)), null);
});

test('a VERP token is never accepted as an unsubscribe token, nor the reverse', () => {
  const verp = signToken('verp', subject, key(SECRET));
  const unsubscribe = signToken('unsubscribe', subject, key(SECRET));
  assert.notEqual(verp, unsubscribe);
  assert.equal(verifyToken(verp, 'unsubscribe', ring(SECRET)), null);
  assert.equal(verifyToken(unsubscribe, 'verp', ring(SECRET)), null);
  assert.deepEqual(verifyToken(verp, 'verp', ring(SECRET)), subject);
});

test('the token shows the subscriber id in no obvious encoding', () => {
  const id = 123456;
  const token = signToken('unsubscribe', { listId: 7, subscriberId: id }, key(SECRET));
  const bytes = Buffer.from(token, 'base64url');
  const decimal = String(id);
  const hex = id.toString(16);
  const uint64 = Buffer.alloc(8);
  uint64.writeBigUInt64BE(BigInt(id));
  const uint32 = uint64.subarray(4);
  for (const needle of [decimal, hex, uint64.toString('base64url'), uint32.toString('base64url').slice(0, 4)]) {
    assert.ok(!token.toLowerCase().includes(needle.toLowerCase()), `token contains ${needle}`);
  }
  assert.ok(!bytes.includes(uint32), 'raw bytes contain the big-endian id');
  assert.ok(!bytes.toString('latin1').includes(decimal), 'raw bytes contain the decimal id');
  // Consecutive ids give unrelated tokens: no shared prefix beyond chance.
  const next = signToken('unsubscribe', { listId: 7, subscriberId: id + 1 }, key(SECRET));
  let shared = 0;
  while (shared < token.length && token[shared] === next[shared]) shared++;
  assert.ok(shared < 4, `tokens of consecutive ids share a ${shared}-character prefix`);
});

test('an empty secret is refused when signing and skipped when verifying', () => {
  assert.throws(() => signToken('unsubscribe', subject, key('')), { name: 'BulletinError', code: 'CONFIG' });
  const token = signToken('unsubscribe', subject, key(SECRET));
  assert.deepEqual(verifyToken(token, 'unsubscribe', ring('', SECRET)), subject);
});

test('a token of another installation is rejected, even under the same secret', () => {
  const theirs = signToken('unsubscribe', subject, key(SECRET, ELSEWHERE));
  assert.notEqual(theirs, signToken('unsubscribe', subject, key(SECRET)));
  assert.equal(verifyToken(theirs, 'unsubscribe', ring(SECRET)), null);
  assert.equal(verifyToken(theirs, 'unsubscribe', { keys: [key(SECRET)], legacySecrets: [SECRET] }), null, 'nor as an old-style token');
  assert.deepEqual(verifyToken(theirs, 'unsubscribe', { keys: [key(SECRET, ELSEWHERE)], legacySecrets: [] }), subject);
});

test('an old-style token (version 1, no installation id) verifies only under the legacy secrets given', () => {
  const old = signLegacyToken('unsubscribe', subject, SECRET);
  assert.match(old, /^[A-Za-z0-9_-]{40}$/);
  assert.notEqual(old, signToken('unsubscribe', subject, key(SECRET)));
  assert.equal(verifyToken(old, 'unsubscribe', ring(SECRET)), null, 'a new installation never takes it');
  assert.deepEqual(verifyToken(old, 'unsubscribe', { keys: [key(SECRET)], legacySecrets: [PREVIOUS, SECRET] }), subject);
  assert.equal(verifyToken(old, 'verp', { keys: [], legacySecrets: [SECRET] }), null, 'its purpose still counts');
  assert.equal(verifyToken(flipBit(old, 77), 'unsubscribe', { keys: [], legacySecrets: [SECRET] }), null);
});
