// A private Postfix instance on 127.0.0.1 for tests: its own configuration, queue and data
// directories under a temporary directory, a free port, every message discarded after it was
// accepted, and the limits a test asks for (smtpd_client_message_rate_limit). Debian's `postfix`
// package provides it (.ci/run installs it); `postfixMissing()` says why a test must skip without it.
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, chown, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { freePort } from './ports.js';

const run = promisify(execFile);
const POSTFIX = '/usr/sbin/postfix';

/** Why Postfix tests cannot run here, or null when they can. */
export function postfixMissing(): string | null {
  if (!existsSync(POSTFIX)) return 'Postfix is not installed (apt-get install postfix; .ci/run installs it)';
  if (process.getuid?.() !== 0) return 'a private Postfix instance needs root to start';
  return null;
}

export interface PostfixOptions {
  /** smtpd_client_message_rate_limit: messages per `rateTimeUnit` from one client. */
  readonly messageRateLimit?: number;
  /** anvil_rate_time_unit, e.g. '1s'. */
  readonly rateTimeUnit?: string;
  /** More main.cf settings, over the defaults (e.g. a transport_maps that relays instead of discarding). */
  readonly main?: Readonly<Record<string, string>>;
}

export interface TestPostfix {
  readonly port: number;
  readonly url: string;
  /** The instance's mail log so far. */
  log(): Promise<string>;
  stop(): Promise<void>;
}

export async function startPostfix(options: PostfixOptions = {}): Promise<TestPostfix> {
  const dir = await mkdtemp(join(tmpdir(), 'bulletin-postfix-'));
  await chmod(dir, 0o755); // the postfix user must reach its data directory
  const conf = join(dir, 'conf');
  const data = join(dir, 'data');
  await mkdir(conf);
  await mkdir(join(dir, 'queue'));
  await mkdir(data);
  const { stdout: uid } = await run('id', ['-u', 'postfix']);
  await chown(data, Number(uid.trim()), 0);
  const port = await freePort();
  const main = {
    compatibility_level: '3.6',
    queue_directory: join(dir, 'queue'),
    data_directory: data,
    command_directory: '/usr/sbin',
    daemon_directory: '/usr/lib/postfix/sbin',
    shlib_directory: '/usr/lib/postfix',
    meta_directory: '/etc/postfix',
    mail_owner: 'postfix',
    setgid_group: 'postdrop',
    inet_interfaces: '127.0.0.1',
    inet_protocols: 'ipv4',
    myhostname: 'relay.bulletin.test',
    mydestination: '',
    mynetworks: '127.0.0.0/8',
    smtpd_relay_restrictions: 'permit_mynetworks, reject',
    // Every message accepted is thrown away: the test is about what the relay says, not delivery.
    default_transport: 'discard:bulletin test',
    relay_transport: 'discard:bulletin test',
    local_transport: 'discard:bulletin test',
    alias_maps: '',
    alias_database: '',
    biff: 'no',
    // By default mynetworks is exempt from the client limits; a test wants them.
    smtpd_client_event_limit_exceptions: '',
    smtpd_client_message_rate_limit: String(options.messageRateLimit ?? 0),
    anvil_rate_time_unit: options.rateTimeUnit ?? '60s',
    maillog_file: join(dir, 'maillog'),
    maillog_file_prefixes: dir,
    ...options.main,
  };
  await writeFile(
    join(conf, 'main.cf'),
    `${Object.entries(main)
      .map(([key, value]) => `${key} = ${value}`)
      .join('\n')}\n`,
  );
  const services = [
    `127.0.0.1:${port} inet n - n - - smtpd`,
    'cleanup unix n - n - 0 cleanup',
    'qmgr unix n - n 300 1 qmgr',
    'rewrite unix - - n - - trivial-rewrite',
    'bounce unix - - n - 0 bounce',
    'defer unix - - n - 0 bounce',
    'trace unix - - n - 0 bounce',
    'verify unix - - n - 1 verify',
    'flush unix n - n 1000? 0 flush',
    'proxymap unix - - n - - proxymap',
    'showq unix n - n - - showq',
    'error unix - - n - - error',
    'retry unix - - n - - error',
    'discard unix - - n - - discard',
    'smtp unix - - n - - smtp',
    'anvil unix - - n - 1 anvil',
    'scache unix - - n - 1 scache',
    'postlog unix-dgram n - n - 1 postlogd',
  ];
  await writeFile(join(conf, 'master.cf'), `${services.join('\n')}\n`);
  try {
    await run(POSTFIX, ['-c', conf, 'start']);
  } catch (error) {
    const log = await readFile(join(dir, 'maillog'), 'utf8').catch(() => '');
    await rm(dir, { recursive: true, force: true });
    throw new Error(`postfix did not start: ${(error as Error).message}\n${log}`, { cause: error });
  }
  // Ready once smtpd answers.
  for (let waited = 0; ; waited += 100) {
    const ok = await new Promise<boolean>((resolve) => {
      const client = connect(port, '127.0.0.1');
      client.once('data', () => {
        client.destroy();
        resolve(true);
      });
      client.once('error', () => resolve(false));
    });
    if (ok) break;
    if (waited > 10_000) throw new Error(`postfix did not answer on port ${port}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return {
    port,
    url: `smtp://127.0.0.1:${port}?tls=off`,
    log: () => readFile(join(dir, 'maillog'), 'utf8'),
    async stop() {
      await run(POSTFIX, ['-c', conf, 'stop']).catch(() => undefined);
      await rm(dir, { recursive: true, force: true });
    },
  };
}
