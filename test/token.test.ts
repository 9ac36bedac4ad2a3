// Unsubscribe and VERP tokens: they round-trip, resist tampering, honour rotation and purpose,
// and reveal nothing readable about the subscriber they name.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { signToken, verifyToken } from '../src/domain/token.js';

const SECRET = 'current-secret-0123456789abcdef';
const PREVIOUS = 'previous-secret-fedcba9876543210';
const subject = { listId: 7, subscriberId: 123456 };

function flipBit(token: string, bit: number): string {
  const bytes = Buffer.from(token, 'base64url');
  bytes[bit >> 3]! ^= 1 << (bit & 7);
  return bytes.toString('base64url');
}

test('a token round-trips to its list and subscriber', () => {
  const token = signToken('unsubscribe', subject, SECRET);
  assert.match(token, /^[A-Za-z0-9_-]{40}$/);
  assert.deepEqual(verifyToken(token, 'unsubscribe', [SECRET]), subject);
});

test('large ids round-trip too', () => {
  const big = { listId: 0xffff_ffff, subscriberId: Number.MAX_SAFE_INTEGER };
  assert.deepEqual(verifyToken(signToken('verp', big, SECRET), 'verp', [SECRET]), big);
});

test('signing is deterministic and distinguishes subscribers and lists', () => {
  const token = signToken('unsubscribe', subject, SECRET);
  assert.equal(signToken('unsubscribe', subject, SECRET), token);
  assert.notEqual(signToken('unsubscribe', { listId: 7, subscriberId: 123457 }, SECRET), token);
  assert.notEqual(signToken('unsubscribe', { listId: 8, subscriberId: 123456 }, SECRET), token);
});

test('flipping any single bit makes the token invalid', () => {
  const token = signToken('unsubscribe', subject, SECRET);
  for (let bit = 0; bit < 30 * 8; bit++) {
    assert.equal(verifyToken(flipBit(token, bit), 'unsubscribe', [SECRET]), null, `bit ${bit}`);
  }
});

test('truncated, extended or malformed tokens are rejected', () => {
  const token = signToken('unsubscribe', subject, SECRET);
  assert.equal(verifyToken(token.slice(0, -1), 'unsubscribe', [SECRET]), null);
  assert.equal(verifyToken(token.slice(0, 20), 'unsubscribe', [SECRET]), null);
  assert.equal(verifyToken(`${token}A`, 'unsubscribe', [SECRET]), null);
  assert.equal(verifyToken('', 'unsubscribe', [SECRET]), null);
  assert.equal(verifyToken(`${token.slice(0, -1)}=`, 'unsubscribe', [SECRET]), null);
  assert.equal(verifyToken(`${token.slice(0, -1)}.`, 'unsubscribe', [SECRET]), null);
});

test('a token made with another secret is rejected', () => {
  const token = signToken('unsubscribe', subject, 'some-other-secret-entirely');
  assert.equal(verifyToken(token, 'unsubscribe', [SECRET]), null);
});

test('a token made with a previous secret still verifies during rotation', () => {
  const token = signToken('unsubscribe', subject, PREVIOUS);
  assert.deepEqual(verifyToken(token, 'unsubscribe', [SECRET, PREVIOUS]), subject);
  assert.equal(verifyToken(token, 'unsubscribe', [SECRET]), null);
});

test('a VERP token is never accepted as an unsubscribe token, nor the reverse', () => {
  const verp = signToken('verp', subject, SECRET);
  const unsubscribe = signToken('unsubscribe', subject, SECRET);
  assert.notEqual(verp, unsubscribe);
  assert.equal(verifyToken(verp, 'unsubscribe', [SECRET]), null);
  assert.equal(verifyToken(unsubscribe, 'verp', [SECRET]), null);
  assert.deepEqual(verifyToken(verp, 'verp', [SECRET]), subject);
});

test('the token shows the subscriber id in no obvious encoding', () => {
  const id = 123456;
  const token = signToken('unsubscribe', { listId: 7, subscriberId: id }, SECRET);
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
  const next = signToken('unsubscribe', { listId: 7, subscriberId: id + 1 }, SECRET);
  let shared = 0;
  while (shared < token.length && token[shared] === next[shared]) shared++;
  assert.ok(shared < 4, `tokens of consecutive ids share a ${shared}-character prefix`);
});

test('an empty secret is refused when signing and skipped when verifying', () => {
  assert.throws(() => signToken('unsubscribe', subject, ''), { name: 'BulletinError', code: 'CONFIG' });
  const token = signToken('unsubscribe', subject, SECRET);
  assert.deepEqual(verifyToken(token, 'unsubscribe', ['', SECRET]), subject);
});
