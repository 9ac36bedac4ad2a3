// The one module that decides what an SMTP reply or error means for a delivery (Postfix's
// smtp_trouble.c idea). The dispatcher never looks at reply codes; transports hand every reply and
// every nodemailer error to this module, together with whether the whole message had been written.
//
// The table (first matching row wins):
//
//   #  what happened                                              outcome
//   1  2xx reply to the end of the message                          sent
//   2  a reply saying "too many recipients" (any 4xx/5xx, any stage) deferred  (RFC 5321 4.5.3.1.10)
//   3  552 to RCPT TO                                               deferred  (RFC 5321 4.5.3.1.10:
//                                                                             treat as 452, temporary)
//   4  other 5xx to RCPT TO (5.1.1 unknown user, …)                 failed
//   5  5xx to DATA, or to the end of the message (5.7.1 content…)   failed
//   6  5xx to the session or the sender: greeting, EHLO/HELO,       deferred  (not about this
//      STARTTLS, AUTH, MAIL FROM                                              recipient: a relay or
//                                                                             configuration problem
//                                                                             that would otherwise fail
//                                                                             the whole list at once;
//                                                                             like Postfix's
//                                                                             smtp_skip_5xx_greeting and
//                                                                             smtp_sasl_auth_soft_bounce)
//   7  4xx anywhere, including 421 at the greeting or mid-session   deferred
//   8  a recipient address nodemailer refuses to write in RCPT TO   failed    (it never will)
//   9  no reply (refused, reset, closed, DNS, TLS, timeout,         deferred  (the server cannot have
//      protocol confusion) BEFORE the whole message was written            accepted it)
//  10  no reply AFTER the whole message was written                 uncertain (RFC 1047: it may have
//                                                                             been accepted; a resend
//                                                                             may duplicate it)
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
// Pushback: a deferral may also say that the relay wants us to slow down (the adaptive pace reacts;
// see adaptive.ts). This module alone decides which:
//   'session'  no session could be set up: refused or timed-out connections, 4xx at the greeting,
//              EHLO, STARTTLS or AUTH (too many connections, or the relay is down)
//   'rate'     4xx to a message in an open session (421, 450, 451, 452, 4.7.x "try again later",
//              "rate exceeded"), except greylisting and "too many recipients", which are about
//              this message, not the pace
import type { Pushback, SendOutcome } from './transport.js';

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

/** Row 1: the server answered 2xx to the end of the message. */
export function classifySuccess(response: string, relay: string): SendOutcome {
  return { kind: 'sent', reply: oneLine(response), relay };
}

/**
 * Rows 2–10. `bodyWritten` is true once the whole message (with its final dot) was handed to the
 * connection: a failure without a reply after that point may have been delivered.
 */
export function classifyFailure(error: SmtpErrorLike, bodyWritten: boolean, relay: string, stage: 'setup' | 'message' = 'message'): SendOutcome {
  const outcome = classifyReply(error, bodyWritten, relay);
  if (outcome.kind !== 'deferred') return outcome;
  const pushback = pushbackOf(error, stage, outcome.reply);
  return pushback ? { ...outcome, pushback } : outcome;
}

function pushbackOf(error: SmtpErrorLike, stage: 'setup' | 'message', reply: string): Pushback | null {
  const code = error.responseCode;
  if (stage === 'setup') return code === undefined || (code >= 400 && code < 500) ? 'session' : null;
  if (code === undefined || code < 400 || code >= 500) return null;
  if (TOO_MANY_RECIPIENTS.test(reply) || GREYLISTED.test(reply)) return null;
  return 'rate';
}

const GREYLISTED = /grey ?list|gray ?list/i;

function classifyReply(error: SmtpErrorLike, bodyWritten: boolean, relay: string): SendOutcome {
  const code = error.responseCode;
  // Only a 4xx or 5xx is a refusal; any other code on an error is a confused exchange: no answer.
  if (code !== undefined && code >= 400 && code < 600) {
    const reply = oneLine(error.response ?? `${code} ${error.message}`);
    const command = (error.command ?? '').toUpperCase();
    if (TOO_MANY_RECIPIENTS.test(reply)) return { kind: 'deferred', reply, relay }; // row 2
    if (code < 500) return { kind: 'deferred', reply, relay }; // row 7
    if (command.startsWith('RCPT')) return { kind: code === 552 ? 'deferred' : 'failed', reply, relay }; // rows 3, 4
    if (command === 'DATA') return { kind: 'failed', reply, relay }; // row 5
    return { kind: 'deferred', reply: `${reply} (${describeCommand(command)}; not about this recipient)`, relay }; // row 6
  }
  if (error.code === 'EENVELOPE' && error.command === 'API' && /^Invalid recipient/i.test(error.message)) {
    return { kind: 'failed', reply: oneLine(error.message), relay }; // row 8
  }
  const what = oneLine(`${error.code ?? 'ERROR'}: ${error.message}`);
  if (bodyWritten) return { kind: 'uncertain', reply: `no reply after the end of the message (${what})`, relay }; // row 10
  return { kind: 'deferred', reply: what, relay }; // row 9
}

const TOO_MANY_RECIPIENTS = /too many recipients/i;

function describeCommand(command: string): string {
  if (command === '' || command === 'CONN') return 'refused at the greeting';
  return `refused at ${command}`;
}

function oneLine(text: string): string {
  return text.replace(/\s+/g, ' ').trim().slice(0, 1000);
}
