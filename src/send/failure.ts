// The one module that decides what an SMTP reply or error means for a delivery (Postfix's
// smtp_trouble.c idea). The dispatcher never looks at reply codes; transports ask this module.
//
//   what happened                                         outcome
//   2xx after the end of the message                      sent
//   552 on RCPT, or a reply saying "too many recipients"  deferred  (RFC 5321 4.5.3.1.10: temporary)
//   other 5xx (RCPT, DATA, after the message)             failed    (5.1.1 unknown user, …)
//   4xx, including 421 (greeting, mid-session)            deferred
//   no reply, before the whole message was written        deferred  (refused, reset, timed out: the
//                                                                    server cannot have accepted it)
//   no reply, after the whole message was written         uncertain (RFC 1047: the server may have
//                                                                    accepted it; resending may duplicate)
import type { SendOutcome } from './transport.js';

/** What nodemailer (and most SMTP clients) put on an error. */
export interface SmtpErrorLike {
  readonly message: string;
  readonly code?: string;
  readonly responseCode?: number;
  readonly response?: string;
  readonly command?: string;
}

export function classifySuccess(response: string, relay: string): SendOutcome {
  return { kind: 'sent', reply: oneLine(response), relay };
}

/**
 * `bodyWritten` is true once the whole message was handed to the connection: a failure without a
 * reply after that point may have been delivered.
 */
export function classifyFailure(error: SmtpErrorLike, bodyWritten: boolean, relay: string): SendOutcome {
  const code = error.responseCode;
  if (code !== undefined && code >= 200) {
    const reply = oneLine(error.response ?? `${code} ${error.message}`);
    if (code >= 200 && code < 300) return { kind: 'sent', reply, relay };
    if (code === 552 && (/^RCPT/i.test(error.command ?? '') || /too many recipients/i.test(reply))) {
      return { kind: 'deferred', reply, relay };
    }
    if (/too many recipients/i.test(reply)) return { kind: 'deferred', reply, relay };
    if (code >= 500) return { kind: 'failed', reply, relay };
    return { kind: 'deferred', reply, relay };
  }
  const reply = oneLine(`${error.code ?? 'ERROR'}: ${error.message}`);
  return { kind: bodyWritten ? 'uncertain' : 'deferred', reply, relay };
}

function oneLine(text: string): string {
  return text.replace(/\s+/g, ' ').trim().slice(0, 1000);
}
