// What counts as the database going away (a send waits it out, other commands exit 69), what a
// malformed DATABASE_URL is, and how DatabaseOutage waits: errors as node-postgres and Node's net
// module make them, no database needed.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { DatabaseOutage } from '../src/send/database-outage.js';
import { BulletinError } from '../src/domain/errors.js';
import { CommitUnknownError, databaseUrlProblem, isConnectionError, isPermissionError } from '../src/store/database.js';

function failure(message: string, fields: Record<string, unknown> = {}): Error {
  return Object.assign(new Error(message), fields);
}

test('connection errors: refused, reset, broken pipe, a missing Unix socket, timeouts, SQLSTATE 08 and 57P01–57P03', () => {
  const gone = [
    failure('connect ECONNREFUSED 127.0.0.1:5432', { code: 'ECONNREFUSED', syscall: 'connect' }),
    failure('read ECONNRESET', { code: 'ECONNRESET', syscall: 'read' }),
    failure('write EPIPE', { code: 'EPIPE', syscall: 'write' }),
    failure('connect ENOENT /var/run/postgresql/.s.PGSQL.5432', { code: 'ENOENT', syscall: 'connect', address: '/var/run/postgresql/.s.PGSQL.5432' }),
    failure('connect ETIMEDOUT 10.0.0.7:5432', { code: 'ETIMEDOUT' }),
    failure('getaddrinfo EAI_AGAIN db.example.net', { code: 'EAI_AGAIN' }),
    failure('Connection terminated unexpectedly'),
    failure('Connection terminated due to connection timeout'),
    failure('timeout exceeded when trying to connect'),
    failure('Client has encountered a connection error and is not queryable'),
    failure('terminating connection due to administrator command', { code: '57P01' }),
    failure('terminating connection due to crash of another server process', { code: '57P02' }),
    failure('the database system is shutting down', { code: '57P03' }),
    failure('the database system is starting up', { code: '57P03' }),
    failure('the database system is starting up'),
    failure('connection failure', { code: '08006' }),
    failure('SSL SYSCALL error', { code: '08000' }),
    failure('sorry, too many clients already', { code: '53300' }),
    new BulletinError('DATABASE_UNAVAILABLE', 'Cannot connect to PostgreSQL at db:5432/x: connect ECONNREFUSED.', {
      cause: failure('connect ECONNREFUSED', { code: 'ECONNREFUSED' }),
    }),
    new CommitUnknownError(failure('Connection terminated unexpectedly')),
    Object.assign(new AggregateError([failure('connect ECONNREFUSED ::1:5432', { code: 'ECONNREFUSED' })], ''), {}),
  ];
  for (const error of gone) assert.equal(isConnectionError(error), true, error.message);
});

test('not connection errors: a statement that failed, a file that is missing, a refused privilege, a bug', () => {
  const failed = [
    failure('duplicate key value violates unique constraint', { code: '23505' }),
    failure('relation "deliveries" does not exist', { code: '42P01' }),
    failure('permission denied for table deliveries', { code: '42501' }),
    failure('canceling statement due to statement timeout', { code: '57014' }),
    failure("ENOENT: no such file or directory, open 'notice.md'", { code: 'ENOENT', syscall: 'open' }),
    failure('password authentication failed for user "bulletin"', { code: '28P01' }),
    new TypeError("Cannot read properties of undefined (reading 'id')"),
    new BulletinError(
      'DATABASE_UNAVAILABLE',
      'The embedded database in /x is being set up by another bulletin process (pid 7); run the command again when it has finished.',
    ),
  ];
  for (const error of failed) assert.equal(isConnectionError(error), false, error.message);
  assert.equal(isConnectionError(null), false);
  assert.equal(isConnectionError('ECONNRESET'), false);
  assert.equal(isPermissionError(failed[2]), true);
  assert.equal(isPermissionError(failed[1]), false);
});

test('DATABASE_URL: what node-postgres can use, and what it cannot, without repeating the URL', () => {
  for (const good of [
    'postgres://bulletin:secret@db.example.net:5432/bulletin',
    'postgresql://db.example.net/bulletin',
    'postgres://bulletin@/bulletin?host=/var/run/postgresql',
    'postgres://bulletin:p%40ss@127.0.0.1/bulletin?connect_timeout=3',
  ]) {
    assert.equal(databaseUrlProblem(good), null, good);
  }
  for (const bad of [
    'mysql://db.example.net/bulletin',
    'postgres:/db.example.net/bulletin',
    'postgres://u:secret@db.example.net:99999/bulletin',
    'postgres://u:secret@[::1/bulletin',
    'postgres://u:secret@db example/bulletin',
    'postgres://u:secret@db.example.net:0/bulletin',
    'postgres://u:secret@db.example.net/bulletin?connect_timeout=soon',
  ]) {
    const problem = databaseUrlProblem(bad);
    assert.ok(problem !== null, bad);
    assert.ok(!problem.includes('secret'), problem);
  }
});

test('DatabaseOutage waits out connection errors with backoff, throws anything else at once, and gives up when stopped', async () => {
  const waits: number[] = [];
  const outage = new DatabaseOutage({ sleep: async (ms) => void waits.push(ms) });
  let calls = 0;
  const result = await outage.ride(async () => {
    calls++;
    if (calls <= 7) throw failure('connect ECONNREFUSED 127.0.0.1:5432', { code: 'ECONNREFUSED' });
    return 'done';
  });
  assert.equal(result, 'done');
  assert.deepEqual(waits, [500, 1000, 2000, 4000, 8000, 15_000, 15_000]);
  assert.equal(outage.downSince, null, 'answered again');
  assert.equal(outage.note(), null);

  await assert.rejects(
    outage.ride(async () => Promise.reject(failure('duplicate key', { code: '23505' }))),
    /duplicate key/,
  );
  assert.equal(waits.length, 7, 'a failed statement is not retried');

  const stop = new AbortController();
  const notes: string[] = [];
  const stopping = new DatabaseOutage({
    onWait: (it) => void notes.push(it.note('waiting') as string),
    sleep: async () => stop.abort(),
  });
  await assert.rejects(
    stopping.ride(async () => Promise.reject(failure('Connection terminated unexpectedly')), { signal: stop.signal }),
    /Connection terminated unexpectedly/,
  );
  assert.match(notes[0] as string, /^database unreachable since \d\d:\d\d:\d\d \(Connection terminated unexpectedly\); waiting, retrying in 1 s$/);
});
