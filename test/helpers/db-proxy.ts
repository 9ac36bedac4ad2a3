// A small proxy between bulletin and PostgreSQL, on TCP or on a Unix socket, that a test cuts and
// restores at chosen moments: now, or when bulletin sends a statement containing some text (the
// PostgreSQL protocol carries statements as plain text). A cut drops every connection and, until it
// is restored, refuses new ones (TCP: connection refused; Unix socket: the socket file is gone, so
// ENOENT), resets them, or accepts them and never answers (a connect timeout). A statement can be cut
// before it reaches the server, or after it ran with its answer lost (the statement took effect,
// bulletin does not know): the case that shows whether a step is safe to repeat.
import { mkdtemp, rm } from 'node:fs/promises';
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** How connections are treated while the proxy is cut. */
export type CutMode = 'refuse' | 'reset' | 'hang';

export interface StatementFault {
  /** Text the statement must contain, e.g. 'INSERT INTO deliveries'. */
  readonly text: string;
  /** Only after a statement containing this was seen (since the fault was armed). */
  readonly after?: string;
  /** The nth matching statement (default 1). */
  readonly nth?: number;
  /** 'before': the statement never reaches the server; 'lost-reply': it runs, its answer is dropped. */
  readonly when?: 'before' | 'lost-reply';
  readonly mode?: CutMode;
  /** How long the proxy stays cut (default 1500 ms); ignored with `hold`. */
  readonly downMs?: number;
  /**
   * Instead of a timed cut: hold the statement while this runs (e.g. the test restarts the server),
   * then drop the connection it came on.
   */
  readonly hold?: () => Promise<void>;
}

export interface DatabaseProxy {
  /** The DATABASE_URL that goes through the proxy. */
  readonly url: string;
  /** Statements (their first 80 characters) that went through, in order. */
  readonly statements: string[];
  /** Cuts now: every connection dropped, new ones treated as `mode` until restore(). */
  cut(mode?: CutMode): Promise<void>;
  restore(): Promise<void>;
  /** Arms a fault; resolves once it has happened and the proxy is restored. */
  faultOn(fault: StatementFault): Promise<void>;
  close(): Promise<void>;
}

interface Pair {
  readonly client: Socket;
  upstream: Socket | null;
  /** Answers from the server are dropped (lost-reply). */
  deaf: boolean;
  tail: string;
}

interface Armed extends StatementFault {
  seenAfter: boolean;
  matches: number;
  fired: boolean;
  resolve: () => void;
  reject: (error: Error) => void;
}

/** Statements inside a chunk of the client's protocol stream: Query ('Q') and Parse ('P') texts. */
function statementsIn(text: string): string[] {
  const found: string[] = [];
  for (const match of text.matchAll(/(?:SELECT|INSERT|UPDATE|DELETE|WITH|BEGIN|COMMIT|ROLLBACK|CREATE|SET)\b[^\0]{0,80}/g)) found.push(match[0]);
  return found;
}

/**
 * Starts a proxy to the server of `targetUrl` (a postgres:// URL on TCP, or on a Unix socket with
 * `?host=<dir>`, as the embedded PostgreSQL's). `unixSocket`: listen on
 * `<dir>/.s.PGSQL.5432` instead, and give a URL with `?host=<dir>`.
 */
export async function startDatabaseProxy(targetUrl: string, options: { unixSocket?: boolean } = {}): Promise<DatabaseProxy> {
  const target = new URL(targetUrl);
  const targetHost = target.hostname || '127.0.0.1';
  const targetPort = Number(target.port || 5432);
  const targetSocketDir = target.searchParams.get('host');
  const dir = options.unixSocket ? await mkdtemp(join(tmpdir(), 'bulletin-proxy-')) : null;
  const socketPath = dir === null ? null : join(dir, '.s.PGSQL.5432');
  const pairs = new Set<Pair>();
  const armed: Armed[] = [];
  const statements: string[] = [];
  let cutMode: CutMode | null = null;
  let server: Server | null = null;
  let port = 0;

  const drop = (pair: Pair) => {
    pair.client.destroy();
    pair.upstream?.destroy();
    pairs.delete(pair);
  };
  const dropAll = () => {
    for (const pair of [...pairs]) drop(pair);
  };

  const onConnection = (client: Socket) => {
    client.on('error', () => undefined);
    const pair: Pair = { client, upstream: null, deaf: false, tail: '' };
    pairs.add(pair);
    client.on('close', () => drop(pair));
    if (cutMode === 'reset') return drop(pair);
    if (cutMode === 'hang') return; // accepted, never answered
    const upstream = targetSocketDir
      ? createConnection({ path: join(targetSocketDir, `.s.PGSQL.${targetPort}`) })
      : createConnection({ host: targetHost, port: targetPort });
    pair.upstream = upstream;
    upstream.on('error', () => drop(pair));
    upstream.on('close', () => drop(pair));
    upstream.on('data', (chunk: Buffer) => {
      if (!pair.deaf) client.write(chunk);
    });
    client.on('data', (chunk: Buffer) => onClientData(pair, chunk));
  };

  const onClientData = (pair: Pair, chunk: Buffer) => {
    const text = pair.tail + chunk.toString('latin1');
    pair.tail = text.slice(-120);
    const seen = statementsIn(chunk.toString('latin1'));
    statements.push(...seen.map((statement) => statement.slice(0, 80)));
    for (const fault of armed) {
      if (fault.fired) continue;
      if (fault.after !== undefined && !fault.seenAfter) {
        if (text.includes(fault.after)) fault.seenAfter = true;
        continue;
      }
      if (!text.includes(fault.text)) continue;
      fault.matches++;
      if (fault.matches < (fault.nth ?? 1)) continue;
      fault.fired = true;
      armed.splice(armed.indexOf(fault), 1);
      void fire(pair, chunk, fault);
      return;
    }
    if (cutMode === null) pair.upstream?.write(chunk);
    else drop(pair);
  };

  const fire = async (pair: Pair, chunk: Buffer, fault: Armed) => {
    try {
      if (fault.hold) {
        pair.client.pause();
        await fault.hold();
        drop(pair);
        fault.resolve();
        return;
      }
      if (fault.when === 'lost-reply') {
        pair.deaf = true;
        pair.upstream?.write(chunk);
        await new Promise((resolve) => setTimeout(resolve, 300)); // the server runs (and commits) it
      }
      await proxy.cut(fault.mode ?? 'refuse');
      await new Promise((resolve) => setTimeout(resolve, fault.downMs ?? 1500));
      await proxy.restore();
      fault.resolve();
    } catch (error) {
      fault.reject(error as Error);
    }
  };

  const listen = async () => {
    server = createServer(onConnection);
    await new Promise<void>((resolve, reject) => {
      server!.once('error', reject);
      if (socketPath !== null) server!.listen(socketPath, resolve);
      else server!.listen(port, '127.0.0.1', resolve);
    });
    if (socketPath === null) port = (server!.address() as { port: number }).port;
  };
  const stopListening = async () => {
    const closing = server;
    server = null;
    if (closing) await new Promise((resolve) => closing.close(resolve));
    if (socketPath !== null) await rm(socketPath, { force: true });
  };

  await listen();
  const url = new URL(targetUrl);
  let proxyUrl: string;
  if (dir !== null) {
    url.host = '';
    proxyUrl = `${url.protocol}//${url.username}${url.password ? `:${url.password}` : ''}@${url.pathname}?host=${encodeURIComponent(dir)}`;
  } else {
    url.hostname = '127.0.0.1';
    url.port = String(port);
    url.searchParams.delete('host');
    proxyUrl = url.href;
  }

  const proxy: DatabaseProxy = {
    url: proxyUrl,
    statements,
    async cut(mode = 'refuse') {
      cutMode = mode;
      dropAll();
      if (mode === 'refuse') await stopListening();
    },
    async restore() {
      const wasRefusing = cutMode === 'refuse';
      cutMode = null;
      dropAll(); // hanging connections end
      if (wasRefusing || server === null) await listen();
    },
    faultOn(fault) {
      return new Promise<void>((resolve, reject) => {
        armed.push({ ...fault, seenAfter: false, matches: 0, fired: false, resolve, reject });
      });
    },
    async close() {
      armed.length = 0;
      dropAll();
      await stopListening();
      if (dir !== null) await rm(dir, { recursive: true, force: true });
    },
  };
  return proxy;
}
