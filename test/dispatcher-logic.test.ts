// The dispatch loop's own logic, with no database: it runs against an in-memory DispatchStore (the
// interface src/send/dispatch-store.ts declares) and a real SMTP server. Every claimed delivery ends
// with one outcome, claims come in batches past a low-water mark, and a run of identical refusals
// of the message itself holds the send, reopening those deliveries and giving the rest back.
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import type { ClaimedDelivery, DeliveryOutcome, DispatchStore } from '../src/send/dispatch-store.js';
import { Dispatcher, MESSAGE_REFUSALS_TO_HOLD } from '../src/send/dispatcher.js';
import { createSmtpTransport } from '../src/send/smtp-transport.js';
import { Throttle } from '../src/send/throttle.js';
import { startSmtpServer, type TestSmtpServer } from './helpers/smtp-servers.js';

type State = 'queued' | 'sending' | 'sent' | 'deferred' | 'failed' | 'uncertain' | 'skipped';

interface Row {
  readonly id: number;
  readonly email: string;
  state: State;
  /** The state before the claim, for a claim given back. */
  before: State;
  owner: string | null;
  attempts: number;
  firstAttemptAt: Date | null;
  nextAttemptAt: Date | null;
}

/** Deliveries in memory, with the same state rules as store/deliveries.ts (each change checks the state). */
class MemoryStore implements DispatchStore {
  readonly rows: Row[];
  readonly claims: number[] = [];
  readonly reopened: number[] = [];

  constructor(emails: readonly string[]) {
    this.rows = emails.map((email, index) => ({
      id: index + 1,
      email,
      state: 'queued',
      before: 'queued',
      owner: null,
      attempts: 0,
      firstAttemptAt: null,
      nextAttemptAt: null,
    }));
  }

  private claim(rows: Row[], owner: string, limit: number, now: Date): ClaimedDelivery[] {
    const taken = rows.slice(0, limit);
    this.claims.push(taken.length);
    return taken.map((row) => {
      row.before = row.state;
      row.state = 'sending';
      row.owner = owner;
      row.attempts++;
      row.firstAttemptAt ??= now;
      return {
        id: row.id,
        state: 'sending',
        attempts: row.attempts,
        firstAttemptAt: row.firstAttemptAt,
        subscriber: { id: row.id, email: row.email, name: null, attributes: {} },
      };
    });
  }

  async claimDue(options: { owner: string; limit: number; now: Date; includeUncertain: boolean }) {
    const due = this.rows.filter(
      (row) =>
        (row.state === 'deferred' || (row.state === 'uncertain' && options.includeUncertain)) && row.nextAttemptAt !== null && row.nextAttemptAt <= options.now,
    );
    return this.claim(due, options.owner, options.limit, options.now);
  }

  async claimQueued(options: { owner: string; limit: number; now: Date; afterId: number }) {
    const queued = this.rows.filter((row) => row.state === 'queued' && row.id > options.afterId);
    return this.claim(queued, options.owner, options.limit, options.now);
  }

  async selectOwnClaims(_bulletinId: number, owner: string) {
    return this.rows
      .filter((row) => row.state === 'sending' && row.owner === owner)
      .map((row) => ({
        id: row.id,
        state: 'sending' as const,
        attempts: row.attempts,
        firstAttemptAt: row.firstAttemptAt!,
        subscriber: { id: row.id, email: row.email, name: null, attributes: {} },
      }));
  }

  async recordOutcomes(owner: string, outcomes: readonly DeliveryOutcome[]) {
    for (const outcome of outcomes) {
      const row = this.rows.find((candidate) => candidate.id === outcome.id && candidate.state === 'sending' && candidate.owner === owner);
      if (!row) continue;
      row.state = outcome.state;
      row.owner = null;
      row.nextAttemptAt = outcome.nextAttemptAt;
    }
  }

  async releaseClaims(owner: string, ids: readonly number[]) {
    for (const row of this.rows) {
      if (ids.includes(row.id) && row.state === 'sending' && row.owner === owner) {
        row.state = row.before;
        row.owner = null;
        row.attempts--;
      }
    }
  }

  async reopenFailedDeliveries(ids: readonly number[]) {
    for (const row of this.rows) {
      if (ids.includes(row.id) && row.state === 'failed') {
        row.state = 'deferred';
        row.nextAttemptAt = new Date();
        this.reopened.push(row.id);
      }
    }
  }

  async renewLeases(owner: string) {
    return this.rows.filter((row) => row.state === 'sending' && row.owner === owner).map((row) => row.id);
  }

  async expireLapsedClaims() {
    return 0; // one worker, leases never lapse here
  }

  async nextDueAt(_bulletinId: number, includeUncertain: boolean) {
    const due = this.rows
      .filter((row) => row.state === 'deferred' || (row.state === 'uncertain' && includeUncertain))
      .map((row) => row.nextAttemptAt!.getTime());
    return due.length === 0 ? null : new Date(Math.min(...due));
  }

  async msUntilNextLeaseEnd() {
    return null; // no other worker holds claims
  }

  async countUncertain() {
    return this.rows.filter((row) => row.state === 'uncertain').length;
  }

  isConnectionError() {
    return false;
  }

  count(state: State): number {
    return this.rows.filter((row) => row.state === state).length;
  }
}

function dispatcherFor(store: MemoryStore, smtp: TestSmtpServer) {
  const transport = createSmtpTransport({ url: smtp.url, connections: 2, messagesPerConnection: 100 });
  const dispatcher = new Dispatcher(
    {
      store,
      transport,
      pacer: new Throttle({ rate: 10_000 }),
      render: (recipient) => ({
        raw: Buffer.from(`From: news@example.org\r\nTo: ${recipient.email}\r\nMessage-ID: <${recipient.id}@example.org>\r\nSubject: Logic\r\n\r\nHello.\r\n`),
        envelope: { from: 'news@example.org', to: [recipient.email] },
        messageId: `<${recipient.id}@example.org>`,
      }),
    },
    {
      bulletinId: 1,
      listId: 1,
      retry: { minDelayMs: 60_000, maxDelayMs: 120_000, deadlineMs: 3_600_000 },
      resendUncertain: true,
      waitForDeferred: false,
      claimSize: 4,
    },
  );
  return { dispatcher, transport };
}

const servers: TestSmtpServer[] = [];
after(async () => {
  for (const server of servers) await server.close();
});

test('every claimed delivery ends with one outcome, claimed 4 at a time past the low-water mark (no database)', async () => {
  const emails = Array.from({ length: 25 }, (_, index) => `member${String(index).padStart(2, '0')}@example.net`);
  const refused = ['member03@example.net', 'member17@example.net'];
  const smtp = await startSmtpServer({ reject: refused });
  servers.push(smtp);
  const store = new MemoryStore(emails);
  const { dispatcher, transport } = dispatcherFor(store, smtp);
  const end = await dispatcher.run();
  await transport.close();
  assert.equal(end, 'finished');
  assert.deepEqual(dispatcher.counts, { sent: 23, deferred: 0, failed: 2, uncertain: 0, skipped: 0 });
  assert.equal(store.count('sent'), 23);
  assert.deepEqual(
    store.rows.filter((row) => row.state === 'failed').map((row) => row.email),
    refused,
  );
  assert.ok(store.claims.length >= 7, `claimed in batches of at most 4: ${store.claims.join(', ')}`);
  assert.ok(store.claims.every((size) => size <= 4));
  const arrived = smtp.received.filter((message) => message.accepted).flatMap((message) => message.envelope.to);
  assert.equal(arrived.length, 23, 'each accepted member mailed once');
  assert.equal(new Set(arrived).size, 23);
});

test(`${MESSAGE_REFUSALS_TO_HOLD} identical refusals of the message hold the send; those reopen, the rest go back untouched (no database)`, async () => {
  const emails = Array.from({ length: 60 }, (_, index) => `member${String(index).padStart(2, '0')}@example.net`);
  const smtp = await startSmtpServer({ dataReply: '554 5.7.1 Message content rejected' });
  servers.push(smtp);
  const store = new MemoryStore(emails);
  const { dispatcher, transport } = dispatcherFor(store, smtp);
  const end = await dispatcher.run();
  await transport.close();
  assert.equal(end, 'held');
  assert.match(dispatcher.halt?.reply ?? '', /^554 5\.7\.1/);
  assert.ok(store.reopened.length >= MESSAGE_REFUSALS_TO_HOLD, `reopened ${store.reopened.length}`);
  assert.equal(store.count('sending'), 0, 'no claim left behind');
  assert.equal(store.count('sent'), 0);
  assert.equal(store.count('deferred'), store.reopened.length, 'the refused ones are due again');
  assert.equal(store.count('queued') + store.count('deferred') + store.count('failed'), 60);
  assert.ok(store.count('queued') > 0, 'the deliveries never attempted are still queued');
});
