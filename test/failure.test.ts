// Every row of the failure table in src/send/failure.ts, with errors shaped as nodemailer's
// SMTPConnection makes them (code, command, response, responseCode).
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { classifyFailure, classifySuccess, type SmtpErrorLike } from '../src/send/failure.js';

const relay = 'smtp://relay.example.net:25';

/** An error as nodemailer's _formatError builds it: the reply appended to the message, its code parsed. */
function smtpError(code: string, command: string, message: string, response?: string): SmtpErrorLike {
  const responseCode = response === undefined ? undefined : Number(/^\d+/.exec(response)?.[0]);
  return {
    code,
    command,
    message: response === undefined ? message : `${message}: ${response}`,
    ...(response === undefined ? {} : { response, responseCode }),
  };
}

type Kind = 'sent' | 'deferred' | 'failed' | 'uncertain' | 'unusable';
/** What else the outcome must say: pushback, resend, about, bounce, why (absent keys must be absent). */
type Extra = { pushback?: string; resend?: string; about?: string; bounce?: string; why?: string };
type Row = readonly [
  name: string,
  error: SmtpErrorLike,
  bodyWritten: boolean,
  kind: Kind,
  extra?: Extra,
  stage?: 'setup' | 'message',
  messagesOnSession?: number,
];

const rows: Record<string, readonly Row[]> = {
  '2: 5xx or no reply at AUTH: the relay is unusable until the configuration is fixed': [
    [
      '535 5.7.8 to AUTH',
      smtpError('EAUTH', 'AUTH PLAIN', 'Invalid login', '535 5.7.8 Authentication credentials invalid'),
      false,
      'unusable',
      { why: 'configuration' },
      'setup',
    ],
    [
      '530 5.7.0 to AUTH',
      smtpError('EAUTH', 'AUTH LOGIN', 'Invalid login', '530 5.7.0 Authentication required'),
      false,
      'unusable',
      { why: 'configuration' },
      'setup',
    ],
    [
      '534 5.7.9 to AUTH',
      smtpError('EAUTH', 'AUTH PLAIN', 'Invalid login', '534 5.7.9 Authentication mechanism is too weak'),
      false,
      'unusable',
      { why: 'configuration' },
      'setup',
    ],
    ['missing credentials', smtpError('EAUTH', 'API', 'Missing credentials for "PLAIN"'), false, 'unusable', { why: 'configuration' }, 'setup'],
  ],
  '3: a TLS failure: unusable': [
    [
      'certificate not trusted',
      smtpError('ETLS', 'CONN', 'Error initiating TLS - unable to verify the first certificate'),
      false,
      'unusable',
      { why: 'configuration' },
      'setup',
    ],
    [
      'STARTTLS refused with 5xx',
      smtpError('ETLS', 'STARTTLS', 'Error upgrading connection with STARTTLS', '554 5.7.3 TLS not available'),
      false,
      'unusable',
      { why: 'configuration' },
      'setup',
    ],
  ],
  '4: 5xx to the greeting or EHLO: this relay is down for now': [
    [
      '554 at the greeting',
      smtpError('EPROTOCOL', 'CONN', 'Invalid greeting. response=554 5.7.1 No service', '554 5.7.1 No service'),
      false,
      'deferred',
      { pushback: 'session' },
      'setup',
    ],
    [
      '502 to HELO',
      smtpError('EPROTOCOL', 'HELO', 'Invalid HELO. response=502 5.5.2 Error', '502 5.5.2 Error'),
      false,
      'deferred',
      { pushback: 'session' },
      'setup',
    ],
  ],
  '5: 4xx or no reply while setting up: no session': [
    [
      '421 at the greeting',
      smtpError('ECONNECTION', 'CONN', 'Server closed the connection', '421 4.3.2 Too busy'),
      false,
      'deferred',
      { pushback: 'session' },
      'setup',
    ],
    [
      'connection refused',
      { ...smtpError('ESOCKET', 'CONN', 'connect ECONNREFUSED 127.0.0.1:25'), originalCode: 'ECONNREFUSED' } as SmtpErrorLike,
      false,
      'deferred',
      { pushback: 'session' },
      'setup',
    ],
    ['greeting timeout', smtpError('ETIMEDOUT', 'CONN', 'Greeting never received'), false, 'deferred', { pushback: 'session' }, 'setup'],
    [
      '454 to STARTTLS',
      smtpError('ETLS', 'STARTTLS', 'Error upgrading connection with STARTTLS', '454 4.7.0 TLS not available due to local problem'),
      false,
      'deferred',
      { pushback: 'session' },
      'setup',
    ],
    [
      '454 to AUTH',
      smtpError('EAUTH', 'AUTH PLAIN', 'Invalid login', '454 4.7.0 Temporary authentication failure'),
      false,
      'deferred',
      { pushback: 'session' },
      'setup',
    ],
    [
      'connection closed during the TLS upgrade',
      smtpError('ETLS', 'CONN', 'Connection closed unexpectedly'),
      false,
      'deferred',
      { pushback: 'session' },
      'setup',
    ],
    ['DNS failure', smtpError('EDNS', 'CONN', 'getaddrinfo ENOTFOUND relay.example.net'), false, 'deferred', { pushback: 'session' }, 'setup'],
  ],
  '6: 5xx to MAIL FROM about the size: about the message': [
    [
      '552 5.3.4 to MAIL FROM SIZE=',
      smtpError('EENVELOPE', 'MAIL FROM', 'Mail command failed', '552 5.3.4 Message size exceeds fixed limit'),
      false,
      'failed',
      { about: 'message' },
    ],
  ],
  '7: other 5xx to MAIL FROM: the sender is refused, the relay unusable': [
    [
      '550 5.7.1 sender rejected',
      smtpError('EENVELOPE', 'MAIL FROM', 'Mail command failed', '550 5.7.1 Sender address rejected'),
      false,
      'unusable',
      { why: 'configuration' },
    ],
    [
      '530 authentication required',
      smtpError('EENVELOPE', 'MAIL FROM', 'Mail command failed', '530 5.7.0 Authentication required'),
      false,
      'unusable',
      { why: 'configuration' },
    ],
  ],
  '8: the session is spent: again at once on a fresh one': [
    [
      '452 4.5.3 too many messages in this session',
      smtpError('EENVELOPE', 'MAIL FROM', 'Mail command failed', '452 4.5.3 Too many messages in this session'),
      false,
      'deferred',
      { resend: 'fresh-session' },
      'message',
      50,
    ],
    [
      '452 4.5.3 too many recipients after 20 messages (counted per session)',
      smtpError('EENVELOPE', 'RCPT TO', 'Recipient command failed', '452 4.5.3 Too many recipients'),
      false,
      'deferred',
      { resend: 'fresh-session' },
      'message',
      20,
    ],
    [
      '421 session limit reached',
      smtpError('EENVELOPE', 'MAIL FROM', 'Mail command failed', '421 4.4.2 Session limit reached, closing'),
      false,
      'deferred',
      { resend: 'fresh-session' },
      'message',
      100,
    ],
  ],
  '9: "too many recipients" on a fresh session is temporary (RFC 5321 4.5.3.1.10)': [
    ['452 to RCPT', smtpError('EENVELOPE', 'RCPT TO', 'Recipient command failed', '452 4.5.3 Too many recipients'), false, 'deferred'],
    ['554 after the message', smtpError('EMESSAGE', 'DATA', 'Message failed', '554 5.5.3 Too many recipients'), true, 'deferred'],
  ],
  '10: 552 to RCPT is temporary (RFC 5321 4.5.3.1.10)': [
    ['552 5.5.3 to RCPT', smtpError('EENVELOPE', 'RCPT TO', 'Recipient command failed', '552 5.5.3 Recipient limit exceeded'), false, 'deferred'],
    [
      '552 when every recipient was refused',
      smtpError('EENVELOPE', 'RCPT TO', "Can't send mail - all recipients were rejected", '552 5.2.2 Mailbox full'),
      false,
      'deferred',
    ],
  ],
  '11: 5xx to RCPT saying the mailbox does not exist: a hard bounce': [
    [
      '550 5.1.1 unknown user',
      smtpError('EENVELOPE', 'RCPT TO', 'Recipient command failed', '550 5.1.1 <a@example.org>: user unknown'),
      false,
      'failed',
      { bounce: '5.1.1' },
    ],
    [
      '550 5.1.0 address rejected',
      smtpError('EENVELOPE', 'RCPT TO', 'Recipient command failed', '550 5.1.0 Address rejected'),
      false,
      'failed',
      { bounce: '5.1.0' },
    ],
    [
      '550 5.1.10 null MX',
      smtpError('EENVELOPE', 'RCPT TO', 'Recipient command failed', '550 5.1.10 Recipient address has null MX'),
      false,
      'failed',
      { bounce: '5.1.10' },
    ],
    [
      '550 5.2.1 mailbox disabled',
      smtpError('EENVELOPE', 'RCPT TO', 'Recipient command failed', '550 5.2.1 Mailbox disabled, not accepting messages'),
      false,
      'failed',
      { bounce: '5.2.1' },
    ],
    [
      '550 without an enhanced code: no such user',
      smtpError('EENVELOPE', 'RCPT TO', "Can't send mail - all recipients were rejected", '550 No such user here'),
      false,
      'failed',
      { bounce: '5.1.1' },
    ],
  ],
  '12: 5.7.x to RCPT is policy: not held against the subscriber': [
    [
      '554 5.7.1 relay access denied',
      smtpError('EENVELOPE', 'RCPT TO', 'Recipient command failed', '554 5.7.1 <a@example.org>: Relay access denied'),
      false,
      'failed',
      { about: 'message' },
    ],
  ],
  '13: other 5xx to RCPT is permanent': [
    [
      '553 mailbox name not allowed',
      smtpError('EENVELOPE', 'RCPT TO', "Can't send mail - all recipients were rejected", '553 5.1.3 Bad address syntax'),
      false,
      'failed',
    ],
  ],
  '14: 5xx after the message about its content or size: about the message': [
    [
      '554 5.7.1 after the message',
      smtpError('EMESSAGE', 'DATA', 'Message failed', '554 5.7.1 Message rejected as spam'),
      true,
      'failed',
      { about: 'message' },
    ],
    [
      '552 5.3.4 message too big after the message',
      smtpError('EMESSAGE', 'DATA', 'Message failed', '552 5.3.4 Message size exceeds fixed limit'),
      true,
      'failed',
      { about: 'message' },
    ],
    [
      '554 5.6.0 malformed content',
      smtpError('EMESSAGE', 'DATA', 'Message failed', '554 5.6.0 Message content rejected'),
      true,
      'failed',
      { about: 'message' },
    ],
    ['554 without an enhanced code', smtpError('EMESSAGE', 'DATA', 'Message failed', '554 Transaction failed'), true, 'failed', { about: 'message' }],
  ],
  '15: other 5xx to DATA or after the message': [
    ['554 to the DATA command', smtpError('EENVELOPE', 'DATA', 'Data command failed', '554 5.5.1 No valid recipients'), false, 'failed'],
    ['550 5.1.1 after the message', smtpError('EMESSAGE', 'DATA', 'Message failed', '550 5.1.1 User unknown'), true, 'failed'],
  ],
  '16: 421 before the body saying we go too fast: the next pace slot, and a rate signal': [
    [
      '421 4.7.0 to MAIL FROM',
      smtpError('EENVELOPE', 'MAIL FROM', 'Mail command failed', '421 4.7.0 Try again later, closing connection'),
      false,
      'deferred',
      { pushback: 'rate', resend: 'next-slot' },
    ],
    [
      '421 mid-session (nodemailer: the server closed)',
      smtpError('ECONNECTION', 'CONN', 'Server closed the connection', '421 4.7.0 Try again later'),
      false,
      'deferred',
      { pushback: 'rate', resend: 'next-slot' },
    ],
  ],
  '17: another 421 before the body: the session ends, the message goes on a fresh one': [
    [
      '421 4.3.2 shutting down',
      smtpError('EENVELOPE', 'MAIL FROM', 'Mail command failed', '421 4.3.2 Service shutting down'),
      false,
      'deferred',
      { resend: 'fresh-session' },
    ],
  ],
  '18: a 4xx before the body saying we go too fast: the next pace slot': [
    [
      "Postfix's client message rate limit",
      smtpError('EENVELOPE', 'MAIL FROM', 'Mail command failed', '450 4.7.1 Error: too much mail from 127.0.0.1'),
      false,
      'deferred',
      { pushback: 'rate', resend: 'next-slot' },
    ],
    [
      '450 4.7.0 rate limit',
      smtpError('EENVELOPE', 'MAIL FROM', 'Mail command failed', '450 4.7.0 Rate limit exceeded'),
      false,
      'deferred',
      { pushback: 'rate', resend: 'next-slot' },
    ],
  ],
  '19: greylisting is about this message': [
    [
      '451 4.7.1 greylisted at RCPT',
      smtpError('EENVELOPE', 'RCPT TO', "Can't send mail - all recipients were rejected", '451 4.7.1 Greylisted, try again later'),
      false,
      'deferred',
    ],
  ],
  '20: a 4xx saying we go too fast, after the body': [
    ['451 4.7.0 after the message', smtpError('EMESSAGE', 'DATA', 'Message failed', '451 4.7.0 Temporary rate limit'), true, 'deferred', { pushback: 'rate' }],
    [
      '421 after the message saying try again later',
      smtpError('EMESSAGE', 'DATA', 'Message failed', '421 Try again later'),
      true,
      'deferred',
      { pushback: 'rate' },
    ],
  ],
  '21: any other 4xx: perhaps congestion, perhaps not (the pace finds out)': [
    [
      '451 4.3.0 after the message',
      smtpError('EMESSAGE', 'DATA', 'Message failed', '451 4.3.0 Temporary local problem, try again later'),
      true,
      'deferred',
      { pushback: 'temporary' },
    ],
    [
      '450 4.2.1 mailbox busy at RCPT',
      smtpError('EENVELOPE', 'RCPT TO', "Can't send mail - all recipients were rejected", '450 4.2.1 Mailbox busy'),
      false,
      'deferred',
      { pushback: 'temporary' },
    ],
    [
      '452 4.3.1 insufficient storage',
      smtpError('EENVELOPE', 'RCPT TO', 'Recipient command failed', '452 4.3.1 Insufficient system storage'),
      false,
      'deferred',
      { pushback: 'temporary' },
    ],
    [
      '421 4.4.2 after the message',
      smtpError('ECONNECTION', 'CONN', 'Server closed the connection', '421 4.4.2 Shutting down'),
      true,
      'deferred',
      { pushback: 'temporary' },
    ],
  ],
  '22: an address nodemailer cannot write in RCPT TO is permanent': [
    ['invalid recipient', smtpError('EENVELOPE', 'API', 'Invalid recipient "a\\r\\nb@example.org"'), false, 'failed'],
  ],
  '23: larger than the relay takes (nodemailer checks SIZE)': [
    ['size larger than allowed', smtpError('EMESSAGE', 'MAIL FROM', 'Message size larger than allowed 10485760'), false, 'unusable', { why: 'size' }],
  ],
  '24: no reply before the end of the message: not delivered; a fresh session may do': [
    ['connection reset', smtpError('ESOCKET', 'CONN', 'read ECONNRESET'), false, 'deferred', { resend: 'fresh-session' }],
    ['connection closed mid-envelope', smtpError('ECONNECTION', 'CONN', 'Connection closed unexpectedly'), false, 'deferred', { resend: 'fresh-session' }],
    ['socket timeout mid-message', smtpError('ETIMEDOUT', 'CONN', 'Timeout'), false, 'deferred', { resend: 'fresh-session' }],
    ['a 2xx on an error (confused exchange)', smtpError('EPROTOCOL', 'CONN', 'Unexpected Response', '250 2.0.0 Ok'), false, 'deferred'],
    ['no recipients at all', smtpError('EENVELOPE', 'API', 'No recipients defined'), false, 'deferred'],
  ],
  '25: no reply after the end of the message: uncertain (RFC 1047)': [
    ['connection closed before the reply', smtpError('ECONNECTION', 'CONN', 'Connection closed unexpectedly'), true, 'uncertain'],
    ['connection reset before the reply', smtpError('ESOCKET', 'CONN', 'read ECONNRESET'), true, 'uncertain'],
    ['timeout waiting for the reply', smtpError('ETIMEDOUT', 'CONN', 'Timeout'), true, 'uncertain'],
    ['a 2xx on an error after the message', smtpError('EPROTOCOL', 'CONN', 'Unexpected Response', '250 2.0.0 Ok'), true, 'uncertain'],
  ],
};

describe('failure table', () => {
  test('1: a 2xx reply to the end of the message is sent, the reply kept on one line', () => {
    assert.deepEqual(classifySuccess('250 2.0.0 Ok:\r\n queued as 4XyZ', relay), { kind: 'sent', reply: '250 2.0.0 Ok: queued as 4XyZ', relay });
  });

  for (const [row, cases] of Object.entries(rows)) {
    describe(row, () => {
      for (const [name, error, bodyWritten, kind, extra = {}, stage = 'message', messagesOnSession = 0] of cases) {
        test(name, () => {
          const outcome = classifyFailure(error, bodyWritten, relay, stage, { messagesOnSession });
          assert.equal(outcome.kind, kind, outcome.reply);
          assert.equal(outcome.relay, relay);
          const said = outcome as Extra;
          assert.deepEqual(
            { pushback: said.pushback, resend: said.resend, about: said.about, bounce: said.bounce, why: said.why },
            { pushback: extra.pushback, resend: extra.resend, about: extra.about, bounce: extra.bounce, why: extra.why },
          );
          assert.ok(outcome.reply.length > 0 && outcome.reply.length <= 1000 && !/[\r\n]/.test(outcome.reply), outcome.reply);
          if (error.responseCode !== undefined && error.responseCode >= 400)
            assert.ok(outcome.reply.startsWith(error.response ?? ''), 'a refusal keeps the server reply first');
        });
      }
    });
  }

  test('the same lost connection is deferred before the final dot and uncertain after it', () => {
    const lost = smtpError('ECONNECTION', 'CONN', 'Connection closed unexpectedly');
    assert.equal(classifyFailure(lost, false, relay).kind, 'deferred');
    const after = classifyFailure(lost, true, relay);
    assert.equal(after.kind, 'uncertain');
    assert.match(after.reply, /no reply after the end of the message.*ECONNECTION/);
  });

  test('a refused login names the command and what to check; a 5xx greeting says it is not about the recipient', () => {
    const login = classifyFailure(smtpError('EAUTH', 'AUTH PLAIN', 'Invalid login', '535 5.7.8 Authentication credentials invalid'), false, relay, 'setup');
    assert.match(login.reply, /^535 5\.7\.8 .*refused at AUTH PLAIN: check SMTP_USER and SMTP_PASS/);
    const greeting = classifyFailure(smtpError('EPROTOCOL', 'CONN', 'Invalid greeting', '554 5.7.1 No service'), false, relay, 'setup');
    assert.match(greeting.reply, /^554 5\.7\.1 No service \(refused at the greeting; not about this recipient\)/);
  });

  test('a 452 4.5.3 is a spent session only once the session carried messages', () => {
    const error = smtpError('EENVELOPE', 'RCPT TO', 'Recipient command failed', '452 4.5.3 Too many recipients');
    assert.equal((classifyFailure(error, false, relay, 'message', { messagesOnSession: 0 }) as { resend?: string }).resend, undefined);
    assert.equal((classifyFailure(error, false, relay, 'message', { messagesOnSession: 7 }) as { resend?: string }).resend, 'fresh-session');
  });

  test('long multi-line replies become one line of at most 1000 characters', () => {
    const response = `550-5.1.1 first\r\n550 5.1.1 ${'x'.repeat(2000)}`;
    const outcome = classifyFailure(smtpError('EENVELOPE', 'RCPT TO', 'Recipient command failed', response), false, relay);
    assert.equal(outcome.kind, 'failed');
    assert.equal(outcome.reply.length, 1000);
    assert.ok(outcome.reply.startsWith('550-5.1.1 first 550 5.1.1 x'));
  });
});
