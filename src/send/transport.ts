// The one interface the dispatcher sends through: a message in, an outcome out. Implementations
// (the nodemailer SMTP pool, the .eml outbox) never throw for a delivery failure: they return it,
// already classified by src/send/failure.ts.

/** A fully composed message: raw RFC 5322 bytes plus the SMTP envelope. */
export interface OutgoingMessage {
  readonly raw: Buffer;
  readonly envelope: { readonly from: string; readonly to: readonly string[] };
  /** The Message-ID header's value, stable for every retry of this recipient's message. */
  readonly messageId: string;
}

/**
 * What a deferral says about the pace (decided by failure.ts; adaptive.ts reacts):
 * - session:   no session could be set up (refused, 4xx at the greeting): fewer connections, or the
 *              relay is down; counts at once, like an explicit rate signal;
 * - rate:      the relay says in so many words that we go too fast (4.7.x, "rate", "too many",
 *              "throttle", a 421 saying so): counts at once;
 * - temporary: any other 4xx (451 4.3.0 local problem, 450 4.2.1 mailbox busy): perhaps congestion,
 *              perhaps background noise; the pace finds out by slowing down once and watching.
 */
export type Pushback = 'session' | 'rate' | 'temporary';

/**
 * What a refusal means for the message's next try, when it is not the retry backoff:
 * - fresh-session: the session is spent or broke before anything of the message was sent (452
 *   4.5.3 "too many messages", a 421 closing the session, a drop before DATA): the transport sends
 *   it again at once on a fresh session; it never reaches the dispatcher as such unless those
 *   retries ran out (then it is an ordinary deferral);
 * - next-slot: nothing was sent and the relay asked us to slow down (a rate refusal before DATA):
 *   the message goes again at the pace's next slot, not after the backoff.
 */
export type Resend = 'fresh-session' | 'next-slot';

/**
 * What became of one message:
 * - sent: the server answered 2xx after the body;
 * - deferred: temporary (4xx, 421, connection refused/lost/timed out before the end of the body);
 * - failed: permanent (5xx on RCPT or after DATA); `about: 'message'` when the reply is about the
 *   message and not the recipient (552 5.3.4, 554 5.6.x, 5.7.x content or policy), `bounce` the
 *   status when it says the mailbox does not exist (a hard bounce, counted like a reported one);
 * - uncertain: the connection died after the body was sent but before the reply (RFC 1047);
 * - unusable: nothing was sent, and nothing will be until someone fixes something: the relay refuses
 *   our credentials, TLS or sender (`configuration`), or the message is larger than its SIZE.
 */
export type SendOutcome =
  | { readonly kind: 'sent'; readonly reply: string; readonly relay: string }
  | { readonly kind: 'deferred'; readonly reply: string; readonly relay: string; readonly pushback?: Pushback; readonly resend?: Resend }
  | { readonly kind: 'failed'; readonly reply: string; readonly relay: string; readonly about?: 'message'; readonly bounce?: string }
  | { readonly kind: 'uncertain'; readonly reply: string; readonly relay: string }
  | { readonly kind: 'unusable'; readonly reply: string; readonly relay: string; readonly why: 'configuration' | 'size' };

export interface Transport {
  /** Where messages go, for people: `smtp://relay.example.net:587` (never a password), `outbox:/path`. */
  readonly description: string;
  /** How many messages may be in flight at once (the pool's connections, lowered while a relay pushes back). */
  readonly concurrency: number;
  /** Why the transport carries less than it could right now (fewer connections, relays down), if it does. */
  readonly note?: () => string | null;
  /** `signal` aborts a wait for a relay (never a message already on the wire). */
  send(message: OutgoingMessage, signal?: AbortSignal): Promise<SendOutcome>;
  close(): Promise<void>;
}
