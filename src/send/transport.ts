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

/** A deferral that also asks us to slow down (decided by failure.ts; adaptive.ts reacts). */
export type Pushback = 'session' | 'rate';

/**
 * What became of one message:
 * - sent: the server answered 2xx after the body;
 * - deferred: temporary (4xx, 421, connection refused/lost/timed out before the end of the body);
 * - failed: permanent (5xx on RCPT or after DATA);
 * - uncertain: the connection died after the body was sent but before the reply (RFC 1047).
 */
export type SendOutcome =
  | { readonly kind: 'sent'; readonly reply: string; readonly relay: string }
  | { readonly kind: 'deferred'; readonly reply: string; readonly relay: string; readonly pushback?: Pushback }
  | { readonly kind: 'failed'; readonly reply: string; readonly relay: string }
  | { readonly kind: 'uncertain'; readonly reply: string; readonly relay: string };

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
