// Every row of the failure table in src/send/failure.ts, with errors shaped as nodemailer's
// SMTPConnection makes them (code, command, response, responseCode).
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { classifyFailure, classifySuccess, type SmtpErrorLike } from '../src/send/failure.js';

const relay = 'smtp://relay.example.net:25';

/** An error as nodemailer's _formatError builds it: the reply appended to the message, its code parsed. */
function smtpError(code: string, command: string, message: string, response?: string): SmtpErrorLike {
  const responseCode = response === undefined ? undefined : Number(/^\d+/.exec(response)?.[0]);
  return { code, command, message: response === undefined ? message : `${message}: ${response}`, ...(response === undefined ? {} : { response, responseCode }) };
}

type Row = readonly [name: string, error: SmtpErrorLike, bodyWritten: boolean, kind: 'sent' | 'deferred' | 'failed' | 'uncertain'];

const rows: Record<string, readonly Row[]> = {
  '2: "too many recipients" is temporary, whatever the code and stage': [
    ['452 to RCPT', smtpError('EENVELOPE', 'RCPT TO', 'Recipient command failed', '452 4.5.3 Too many recipients'), false, 'deferred'],
    ['554 after the message', smtpError('EMESSAGE', 'DATA', 'Message failed', '554 5.5.3 Too many recipients'), true, 'deferred'],
  ],
  '3: 552 to RCPT is temporary (RFC 5321 4.5.3.1.10)': [
    ['552 5.5.3 to RCPT', smtpError('EENVELOPE', 'RCPT TO', 'Recipient command failed', '552 5.5.3 Recipient limit exceeded'), false, 'deferred'],
    ['552 when every recipient was refused', smtpError('EENVELOPE', 'RCPT TO', "Can't send mail - all recipients were rejected", '552 5.2.2 Mailbox full'), false, 'deferred'],
  ],
  '4: other 5xx to RCPT is permanent': [
    ['550 5.1.1 unknown user', smtpError('EENVELOPE', 'RCPT TO', 'Recipient command failed', '550 5.1.1 <a@example.org>: user unknown'), false, 'failed'],
    ['553 mailbox name not allowed', smtpError('EENVELOPE', 'RCPT TO', "Can't send mail - all recipients were rejected", '553 5.1.3 Bad address syntax'), false, 'failed'],
  ],
  '5: 5xx to DATA or after the message is permanent': [
    ['554 to the DATA command', smtpError('EENVELOPE', 'DATA', 'Data command failed', '554 5.5.1 No valid recipients'), false, 'failed'],
    ['554 5.7.1 after the message', smtpError('EMESSAGE', 'DATA', 'Message failed', '554 5.7.1 Message rejected as spam'), true, 'failed'],
    ['552 message too big after the message', smtpError('EMESSAGE', 'DATA', 'Message failed', '552 5.3.4 Message size exceeds fixed limit'), true, 'failed'],
  ],
  '6: 5xx to the session or the sender is not about the recipient': [
    ['554 at the greeting', smtpError('EPROTOCOL', 'CONN', 'Invalid greeting. response=554 5.7.1 No service', '554 5.7.1 No service'), false, 'deferred'],
    ['535 to AUTH', smtpError('EAUTH', 'AUTH PLAIN', 'Invalid login', '535 5.7.8 Authentication credentials invalid'), false, 'deferred'],
    ['550 to MAIL FROM', smtpError('EENVELOPE', 'MAIL FROM', 'Mail command failed', '550 5.7.1 Sender address rejected'), false, 'deferred'],
    ['502 to HELO', smtpError('EPROTOCOL', 'HELO', 'Invalid HELO. response=502 5.5.2 Error', '502 5.5.2 Error'), false, 'deferred'],
  ],
  '7: 4xx anywhere is temporary': [
    ['421 at the greeting', smtpError('ECONNECTION', 'CONN', 'Server closed the connection', '421 4.3.2 Too busy'), false, 'deferred'],
    ['450 to MAIL FROM', smtpError('EENVELOPE', 'MAIL FROM', 'Mail command failed', '450 4.7.0 Rate limit exceeded'), false, 'deferred'],
    ['451 to RCPT (greylisting)', smtpError('EENVELOPE', 'RCPT TO', "Can't send mail - all recipients were rejected", '451 4.7.1 Greylisted, try again later'), false, 'deferred'],
    ['451 after the message', smtpError('EMESSAGE', 'DATA', 'Message failed', '451 4.3.0 Temporary failure'), true, 'deferred'],
    ['421 after the message', smtpError('ECONNECTION', 'CONN', 'Server closed the connection', '421 4.4.2 Shutting down'), true, 'deferred'],
  ],
  '8: an address nodemailer cannot write in RCPT TO is permanent': [
    ['invalid recipient', smtpError('EENVELOPE', 'API', 'Invalid recipient "a\\r\\nb@example.org"'), false, 'failed'],
  ],
  '9: no reply before the end of the message: temporary': [
    ['connection refused', { ...smtpError('ESOCKET', 'CONN', 'connect ECONNREFUSED 127.0.0.1:25'), originalCode: 'ECONNREFUSED' } as SmtpErrorLike, false, 'deferred'],
    ['connection reset', smtpError('ESOCKET', 'CONN', 'read ECONNRESET'), false, 'deferred'],
    ['connection closed mid-envelope', smtpError('ECONNECTION', 'CONN', 'Connection closed unexpectedly'), false, 'deferred'],
    ['greeting timeout', smtpError('ETIMEDOUT', 'CONN', 'Greeting never received'), false, 'deferred'],
    ['socket timeout mid-message', smtpError('ETIMEDOUT', 'CONN', 'Timeout'), false, 'deferred'],
    ['DNS failure', smtpError('EDNS', 'CONN', 'getaddrinfo ENOTFOUND relay.example.net'), false, 'deferred'],
    ['TLS failure', smtpError('ETLS', 'STARTTLS', 'Error initiating TLS - unable to verify the first certificate'), false, 'deferred'],
    ['a 2xx on an error (confused exchange)', smtpError('EPROTOCOL', 'CONN', 'Unexpected Response', '250 2.0.0 Ok'), false, 'deferred'],
    ['no recipients at all', smtpError('EENVELOPE', 'API', 'No recipients defined'), false, 'deferred'],
  ],
  '10: no reply after the end of the message: uncertain (RFC 1047)': [
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
      for (const [name, error, bodyWritten, kind] of cases) {
        test(name, () => {
          const outcome = classifyFailure(error, bodyWritten, relay);
          assert.equal(outcome.kind, kind);
          assert.equal(outcome.relay, relay);
          assert.ok(outcome.reply.length > 0 && outcome.reply.length <= 1000 && !/[\r\n]/.test(outcome.reply), outcome.reply);
          if (error.responseCode !== undefined && error.responseCode >= 400) assert.ok(outcome.reply.startsWith(error.response ?? ''), 'a refusal keeps the server reply first');
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

  test('a session refusal says it is not about the recipient', () => {
    const outcome = classifyFailure(smtpError('EAUTH', 'AUTH PLAIN', 'Invalid login', '535 5.7.8 Authentication credentials invalid'), false, relay);
    assert.match(outcome.reply, /^535 5\.7\.8 .*refused at AUTH PLAIN; not about this recipient/);
  });

  test('long multi-line replies become one line of at most 1000 characters', () => {
    const response = `550-5.1.1 first\r\n550 5.1.1 ${'x'.repeat(2000)}`;
    const outcome = classifyFailure(smtpError('EENVELOPE', 'RCPT TO', 'Recipient command failed', response), false, relay);
    assert.equal(outcome.kind, 'failed');
    assert.equal(outcome.reply.length, 1000);
    assert.ok(outcome.reply.startsWith('550-5.1.1 first 550 5.1.1 x'));
  });
});

describe('pushback: which deferrals ask us to slow down', () => {
  const pushback = (error: SmtpErrorLike, stage: 'setup' | 'message', bodyWritten = false) => {
    const outcome = classifyFailure(error, bodyWritten, relay, stage);
    return outcome.kind === 'deferred' ? (outcome.pushback ?? null) : `not deferred: ${outcome.kind}`;
  };
  const cases: readonly [string, SmtpErrorLike, 'setup' | 'message', string | null][] = [
    ['421 at the greeting', smtpError('ECONNECTION', 'CONN', 'Server closed the connection', '421 4.7.0 Too many connections'), 'setup', 'session'],
    ['connection refused', smtpError('ESOCKET', 'CONN', 'connect ECONNREFUSED 127.0.0.1:25'), 'setup', 'session'],
    ['greeting timeout', smtpError('ETIMEDOUT', 'CONN', 'Greeting never received'), 'setup', 'session'],
    ['454 to STARTTLS', smtpError('EPROTOCOL', 'STARTTLS', 'Error', '454 4.7.0 TLS not available'), 'setup', 'session'],
    ['535 to AUTH (a configuration problem, not a pace)', smtpError('EAUTH', 'AUTH PLAIN', 'Invalid login', '535 5.7.8 Bad credentials'), 'setup', null],
    ['421 mid-session', smtpError('ECONNECTION', 'CONN', 'Server closed', '421 4.7.0 Try again later'), 'message', 'rate'],
    ['450 4.7.0 rate limit to MAIL FROM', smtpError('EENVELOPE', 'MAIL FROM', 'Mail command failed', '450 4.7.0 Rate limit exceeded'), 'message', 'rate'],
    ['451 after the message', smtpError('EMESSAGE', 'DATA', 'Message failed', '451 4.3.0 Temporary failure'), 'message', 'rate'],
    ['452 insufficient storage', smtpError('EENVELOPE', 'RCPT TO', 'Recipient command failed', '452 4.3.1 Insufficient system storage'), 'message', 'rate'],
    ['451 4.7.1 greylisted (about this message)', smtpError('EENVELOPE', 'RCPT TO', 'Recipient command failed', '451 4.7.1 Greylisted, try again later'), 'message', null],
    ['452 too many recipients (about this message)', smtpError('EENVELOPE', 'RCPT TO', 'Recipient command failed', '452 4.5.3 Too many recipients'), 'message', null],
    ['connection lost mid-envelope', smtpError('ECONNECTION', 'CONN', 'Connection closed unexpectedly'), 'message', null],
    ['550 to RCPT', smtpError('EENVELOPE', 'RCPT TO', 'Recipient command failed', '550 5.1.1 No such user'), 'message', 'not deferred: failed'],
  ];
  for (const [name, error, stage, expected] of cases) {
    test(`${name}: ${expected ?? 'none'}`, () => assert.equal(pushback(error, stage), expected));
  }
});
