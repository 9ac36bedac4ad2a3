// The one module that decides what an SMTP reply or error means for a delivery (Postfix's
// smtp_trouble.c idea). The dispatcher never looks at reply codes; transports hand every reply and
// every nodemailer error to this module, together with where it happened (setting the session up,
// or a message), whether the whole message had been written, and how many messages the session had
// carried before.
//
// The table (first matching row wins). "Before the body" means nothing of the message was sent.
//
//   #   what happened                                                  outcome
//   1   2xx reply to the end of the message                              sent
//       — setting the session up —
//   2   5xx or no reply at AUTH (535, 530, 534, 5.7.0/5.7.8, missing     unusable: configuration (the relay
//       credentials, no common mechanism)                                         is taken out; the send stops
//                                                                                 when no relay is left)
//   3   a TLS failure (certificate, handshake, STARTTLS refused with     unusable: configuration
//       5xx or required and not offered)
//   4   5xx to the greeting or EHLO/HELO                                 deferred, pushback session (like
//                                                                                 smtp_skip_5xx_greeting: this
//                                                                                 relay is down for now)
//   5   4xx or no reply while setting up (421 at the greeting,          deferred, pushback session
//       refused, timed out, 454 to STARTTLS or AUTH)
//       — a message —
//   6   5xx to MAIL FROM about the size (552, 5.3.4)                     failed, about the message
//   7   other 5xx to MAIL FROM (sender refused, 530 auth required)       unusable: configuration
//   8   a 4xx "too many recipients" or 4.5.3 on a session that already deferred, resend on a fresh session
//       carried messages, or a reply saying the session is spent                  (it counted messages, not
//       ("too many messages", "session limit")                                    recipients: we send one each)
//   9   "too many recipients" otherwise (a 5xx, or a fresh session)      deferred (RFC 5321 4.5.3.1.10)
//  10   552 to RCPT TO                                                   deferred (RFC 5321 4.5.3.1.10:
//                                                                                 treat as 452, temporary)
//  11   5xx to RCPT TO saying the mailbox does not exist (5.1.1,         failed, a hard bounce (counted
//       5.1.0, 5.1.10, 5.2.1, "user unknown", "no such user")                     toward the bounce threshold)
//  12   5.7.x to RCPT TO (policy: relaying denied, blocked)              failed, about the message (not
//                                                                                 held against the subscriber)
//  13   other 5xx to RCPT TO                                             failed
//  14   5xx after the message: 552 5.3.4, 5.6.x, 5.7.x, or no enhanced   failed, about the message
//       status (content or policy rejection)
//  15   other 5xx to DATA or after the message                           failed
//  16   421 before the body saying we go too fast (4.7.x, rate words)   deferred, pushback rate, resend
//                                                                                 at the next pace slot
//  17   other 421 before the body (the session is ending)               deferred, resend on a fresh session
//  18   a 4xx before the body saying we go too fast (Postfix's           deferred, pushback rate, resend
//       "450 4.7.1 too much mail from", "4.7.0 rate limit")                       at the next pace slot
//  19   greylisting (any 4xx saying grey/greylist)                       deferred
//  20   a 4xx saying we go too fast (4.7.x, "rate", "too many",          deferred, pushback rate
//       "throttle", "slow down"; "try later" without an enhanced code)
//  21   any other 4xx (451 4.3.0, 450 4.2.1 mailbox busy, 452 4.3.1)     deferred, pushback temporary (the
//                                                                                 pace finds out whether it is
//                                                                                 about our rate)
//  22   a recipient address nodemailer refuses to write in RCPT TO       failed (it never will)
//  23   the message is over the relay's SIZE (nodemailer's own check)    unusable: size
//  24   no reply (reset, closed, timeout, protocol confusion) BEFORE     deferred, resend on a fresh session
//       the whole message was written, on an open session                         (the server cannot have
//                                                                                 accepted it)
//  25   no reply AFTER the whole message was written                     uncertain (RFC 1047: it may have
//                                                                                 been accepted; a resend
//                                                                                 may duplicate it)
//
// "After the whole message was written" cannot be read from a nodemailer error: a lost connection
// is ECONNECTION, a reset ESOCKET and a timeout ETIMEDOUT, all with command 'CONN', at any stage.
// Only a reply to the final dot comes back with its own code (EMESSAGE, command 'DATA', from
// `_actionSMTPStream`). So the transport watches the message stream it hands to
// `SMTPConnection.send`: nodemailer pipes it only after the 354 reply to DATA, into the stream that
// dot-stuffs it and appends the final dot, so its 'end' means the body and the dot were handed to
// the socket. That can be a moment early (bytes still in the socket's buffer), which errs towards
// `uncertain` — a resend with the same Message-ID — and never towards a silent loss.
//
// Why 421 is split (rows 16/17): RFC 5321 makes 421 "closing the transmission channel", which a
// relay says both when it wants us slower ("421 4.7.0 Try again later") and when the session just
// ends (a restart, a per-session limit). Only the first is about our pace; the second costs nothing
// but a new session.
import type { SendOutcome } from './transport.js';

/** What nodemailer (and most SMTP clients) put on an error. */
export interface SmtpErrorLike {
  readonly message: string;
  /** ECONNECTION, ETIMEDOUT, ESOCKET, EDNS, ETLS, EPROTOCOL, EAUTH, EENVELOPE, EMESSAGE, ESTREAM, … */
  readonly code?: string;
  readonly responseCode?: number;
  readonly response?: string;
  /** The command whose reply this was: 'CONN', 'EHLO', 'AUTH PLAIN', 'MAIL FROM', 'RCPT TO', 'DATA', 'API', … */
  readonly command?: string;
}

export interface FailureContext {
  /** Messages this session carried before this one (0: a fresh session). */
  readonly messagesOnSession?: number;
}

/** Row 1: the server answered 2xx to the end of the message. */
export function classifySuccess(response: string, relay: string): SendOutcome {
  return { kind: 'sent', reply: oneLine(response), relay };
}

/**
 * Outcomes with no SMTP reply behind them. They are named here, beside the table, so that this
 * module stays the one place that decides what a delivery's attempt came to.
 */
export const outcomeOf = {
  /** The message never left: the transport was closing or no relay could take it now. Next slot. */
  notSent(reason: string, relay: string): SendOutcome {
    return { kind: 'deferred', reply: `not sent: ${reason}`, relay, resend: 'next-slot' };
  },
  /** The bulletin could not be rendered for this recipient: no retry makes it render. */
  unrenderable(error: Error): Extract<SendOutcome, { kind: 'failed' }> {
    return { kind: 'failed', reply: `render error: ${error.message}`, relay: '' };
  },
  /** A transport threw instead of classifying: a bug, and the message may have left. */
  transportThrew(error: Error, relay: string): SendOutcome {
    return { kind: 'uncertain', reply: `transport error: ${error.message}`, relay };
  },
  /** Larger than the relay's EHLO SIZE: no relay of that size will take it. */
  overSize(bytes: number, maxSize: number, relay: string): SendOutcome {
    return {
      kind: 'unusable',
      why: 'size',
      reply: `the message is ${bytes.toLocaleString('en-US')} bytes; ${relay} takes at most ${maxSize.toLocaleString('en-US')} (its EHLO SIZE)`,
      relay,
    };
  },
  /** Written to the outbox directory (the local capture). */
  written(fileName: string, relay: string): SendOutcome {
    return { kind: 'sent', reply: `250 written to ${fileName}`, relay };
  },
  /** The outbox could not be written (a full disk, a permission): worth retrying once fixed. */
  notWritten(fileName: string, error: Error, relay: string): SendOutcome {
    return { kind: 'deferred', reply: `cannot write ${fileName}: ${error.message}`, relay };
  },
};

/**
 * Rows 2–25. `bodyWritten` is true once the whole message (with its final dot) was handed to the
 * connection: a failure without a reply after that point may have been delivered. `stage` says
 * whether the session was being set up (connect, greeting, EHLO, STARTTLS, AUTH) or carried a message.
 */
export function classifyFailure(
  error: SmtpErrorLike,
  bodyWritten: boolean,
  relay: string,
  stage: 'setup' | 'message' = 'message',
  context: FailureContext = {},
): SendOutcome {
  return stage === 'setup' ? classifySetup(error, relay) : classifyMessage(error, bodyWritten, relay, context.messagesOnSession ?? 0);
}

/** Rows 2–5. */
function classifySetup(error: SmtpErrorLike, relay: string): SendOutcome {
  const code = refusalCode(error);
  const command = (error.command ?? '').toUpperCase();
  const reply = describe(error);
  if (error.code === 'EAUTH' || command.startsWith('AUTH')) {
    if (code === undefined || code >= 500)
      return { kind: 'unusable', why: 'configuration', reply: `${reply} (${describeCommand(command || 'AUTH')}: check SMTP_USER and SMTP_PASS)`, relay }; // row 2
  } else if (error.code === 'ETLS' && (code === undefined || code >= 500) && !/closed unexpectedly/i.test(error.message)) {
    return { kind: 'unusable', why: 'configuration', reply: `${reply} (TLS could not be set up)`, relay }; // row 3
  } else if (code !== undefined && code >= 500) {
    return { kind: 'deferred', pushback: 'session', reply: `${reply} (${describeCommand(command)}; not about this recipient)`, relay }; // row 4
  }
  return { kind: 'deferred', pushback: 'session', reply, relay }; // row 5
}

/** Rows 6–25. */
function classifyMessage(error: SmtpErrorLike, bodyWritten: boolean, relay: string, messagesOnSession: number): SendOutcome {
  const code = refusalCode(error);
  const command = (error.command ?? '').toUpperCase();
  if (code === undefined) {
    if (error.code === 'EENVELOPE' && command === 'API' && /^Invalid recipient/i.test(error.message)) {
      return { kind: 'failed', reply: oneLine(error.message), relay }; // row 22
    }
    if (error.code === 'EMESSAGE' && /size larger than allowed/i.test(error.message)) {
      return { kind: 'unusable', why: 'size', reply: oneLine(error.message), relay }; // row 23
    }
    const what = oneLine(`${error.code ?? 'ERROR'}: ${error.message}`);
    if (bodyWritten) return { kind: 'uncertain', reply: `no reply after the end of the message (${what})`, relay }; // row 25
    return { kind: 'deferred', reply: what, relay, ...(isLostSession(error) ? { resend: 'fresh-session' as const } : {}) }; // row 24
  }
  const reply = describe(error);
  const status = enhancedStatus(reply);
  const atMail = command.startsWith('MAIL');
  const atRcpt = command.startsWith('RCPT');
  const afterBody = bodyWritten || error.code === 'EMESSAGE';
  if (code >= 500) {
    if (atMail) {
      if (code === 552 || status === '5.3.4') return { kind: 'failed', about: 'message', reply, relay }; // row 6
      return { kind: 'unusable', why: 'configuration', reply: `${reply} (refused at MAIL FROM: the relay does not take mail from this sender)`, relay }; // row 7
    }
    if (TOO_MANY_RECIPIENTS.test(reply))
      return SESSION_SPENT.test(reply) ? { kind: 'deferred', resend: 'fresh-session', reply, relay } : { kind: 'deferred', reply, relay }; // rows 8, 9
    if (atRcpt) {
      if (code === 552) return { kind: 'deferred', reply, relay }; // row 10
      const bounce = mailboxUnknown(reply, status);
      if (bounce !== null) return { kind: 'failed', bounce, reply, relay }; // row 11
      if (status?.startsWith('5.7.')) return { kind: 'failed', about: 'message', reply, relay }; // row 12
      return { kind: 'failed', reply, relay }; // row 13
    }
    if (afterBody && (status === null || status === '5.3.4' || status.startsWith('5.6.') || status.startsWith('5.7.'))) {
      return { kind: 'failed', about: 'message', reply, relay }; // row 14
    }
    return { kind: 'failed', reply, relay }; // row 15
  }
  // 4xx
  if (SESSION_SPENT.test(reply) || (TOO_MANY_RECIPIENTS.test(reply) && !afterBody) || (status === '4.5.3' && !afterBody)) {
    return spentOrDeferred(reply, relay, messagesOnSession); // rows 8, 9
  }
  const rate = saysTooFast(reply, status);
  if (!afterBody && code === 421) {
    return rate ? { kind: 'deferred', pushback: 'rate', resend: 'next-slot', reply, relay } : { kind: 'deferred', resend: 'fresh-session', reply, relay }; // rows 16, 17
  }
  if (!afterBody && rate && (atMail || atRcpt)) return { kind: 'deferred', pushback: 'rate', resend: 'next-slot', reply, relay }; // row 18
  if (GREYLISTED.test(reply)) return { kind: 'deferred', reply, relay }; // row 19
  if (rate) return { kind: 'deferred', pushback: 'rate', reply, relay }; // row 20
  return { kind: 'deferred', pushback: 'temporary', reply, relay }; // row 21
}

/** The 4xx or 5xx of a refusal; any other code on an error is a confused exchange: no answer. */
function refusalCode(error: SmtpErrorLike): number | undefined {
  const code = error.responseCode;
  return code !== undefined && code >= 400 && code < 600 ? code : undefined;
}

function spentOrDeferred(reply: string, relay: string, messagesOnSession: number): SendOutcome {
  if (messagesOnSession > 0 || SESSION_SPENT.test(reply)) return { kind: 'deferred', resend: 'fresh-session', reply, relay }; // row 8
  return { kind: 'deferred', reply, relay }; // row 9
}

/** A lost connection (closed, reset, timed out) rather than a confused one: a fresh session may do. */
function isLostSession(error: SmtpErrorLike): boolean {
  return error.code === 'ECONNECTION' || error.code === 'ESOCKET' || error.code === 'ETIMEDOUT';
}

/** The enhanced status code (RFC 3463) right after the reply code, if there is one: '4.7.0'. */
export function enhancedStatus(reply: string): string | null {
  return /^\d{3}[ -]([245]\.\d{1,3}\.\d{1,3})\b/.exec(reply)?.[1] ?? null;
}

/** Row 11: the status of a hard bounce when the reply says the mailbox does not exist, else null. */
function mailboxUnknown(reply: string, status: string | null): string | null {
  if (status !== null) return HARD_BOUNCE_STATUSES.has(status) ? status : null;
  return MAILBOX_UNKNOWN.test(reply) ? '5.1.1' : null;
}

/** Rows 16, 18, 20: the relay says we go too fast. */
function saysTooFast(reply: string, status: string | null): boolean {
  if (GREYLISTED.test(reply)) return false;
  if (status?.startsWith('4.7.')) return true;
  if (TOO_FAST.test(reply)) return true;
  return status === null && TRY_LATER.test(reply);
}

const HARD_BOUNCE_STATUSES = new Set(['5.1.1', '5.1.0', '5.1.10', '5.2.1']);
const MAILBOX_UNKNOWN =
  /user unknown|unknown user|no such (user|mailbox|recipient)|mailbox (unavailable|not found|does not exist)|recipient (unknown|not found|does not exist)/i;
const TOO_MANY_RECIPIENTS = /too many recipients/i;
const SESSION_SPENT = /too many (messages|mails|transactions)|(session|connection) limit|per (session|connection)|(session|connection) (expired|spent)/i;
const TOO_FAST = /\brate\b|too many|too much mail|too fast|throttl|slow down|exceeded/i;
const TRY_LATER = /try (again )?later/i;
const GREYLISTED = /grey ?list|gray ?list/i;

function describe(error: SmtpErrorLike): string {
  if (error.response !== undefined) return oneLine(error.response);
  return oneLine(error.responseCode === undefined ? `${error.code ?? 'ERROR'}: ${error.message}` : `${error.responseCode} ${error.message}`);
}

function describeCommand(command: string): string {
  if (command === '' || command === 'CONN') return 'refused at the greeting';
  return `refused at ${command}`;
}

function oneLine(text: string): string {
  return text.replace(/\s+/g, ' ').trim().slice(0, 1000);
}
