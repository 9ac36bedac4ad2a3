// `bulletin serve`: the HTTP server behind the links in every bulletin. GET /u/<token> shows a page
// (and never changes anything: link scanners fetch every URL); POST /u/<token> unsubscribes, from a
// mail client's one-click (RFC 8058) or the page's button, and undoes it from the confirmation (only
// from our own page: same origin). GET /help/<slug> says what a list is and how to leave it.
// Also GET /healthz for monitors, the exported web archive under /archive/, and (given an observer
// with metrics) GET /metrics: the observer hears of each unsubscribe and each answer.
import fastifyFormbody from '@fastify/formbody';
import fastifyRateLimit from '@fastify/rate-limit';
import fastifyStatic from '@fastify/static';
import Fastify, { type FastifyReply, type FastifyRequest } from 'fastify';
import { createServer } from 'node:http';
import type { App } from '../app/context.js';
import { checkHealth } from '../app/health.js';
import { listHelp } from '../app/help.js';
import { describeLink, leaveByLink, linkOrigins, OUT_OF_DATE, rejoinByLink, tokenVerifies } from '../app/unsubscribe.js';
import { BulletinError } from '../domain/errors.js';
import { isConnectionError } from '../store/database.js';
import { parseFormData } from './form-data.js';
import { cannotRejoinPage, errorPage, invalidLinkPage, leftPage, linkPage, notFoundPage, rejoinedPage, STYLESHEET, STYLESHEET_PATH } from './pages.js';
import { crossOriginPage, helpPage, outOfDatePage } from './help-pages.js';
import { isSameOrigin } from './same-origin.js';

export interface WebServerOptions {
  readonly host: string;
  /** 0: any free port. */
  readonly port: number;
  /** The exported archive to serve under /archive/ (an absolute path); null or absent: none. */
  readonly archiveDir?: string | null;
  /**
   * POSTs a client (by IP address) may make per minute, default 30: the page's buttons and any POST
   * whose token does not verify. A one-click POST whose token verifies is never limited.
   */
  readonly postsPerMinute?: number;
  /** Where a line goes when a request fails on our side (5xx); tokens and addresses are never in it. */
  readonly log?: (line: string) => void;
  /** Told of unsubscribes and answers (metrics, the JSON log); with `metrics`, GET /metrics serves them. */
  readonly observer?: WebObserver;
}

export interface WebObserver {
  /** A member left a list through this server (not a repeated click of one who had left already). */
  unsubscribed?(source: 'one-click' | 'page', list: string): void;
  /** A response went out with this status code. */
  answered?(status: number): void;
  /** Prometheus text for GET /metrics. */
  readonly metrics?: { readonly contentType: string; text(): Promise<string> };
}

export interface RunningWebServer {
  /** http://host:port */
  readonly url: string;
  readonly port: number;
  /** Stops taking requests, lets those in progress finish (at most CLOSE_GRACE_MS), then returns. */
  close(): Promise<void>;
}

/** A one-click POST is 26 bytes, the page's form a few more; nothing here needs more than this. */
export const BODY_LIMIT = 4096;
/**
 * A request's headers, and then the whole request with its body, must arrive within this (a client
 * trickling bytes holds no connection for long); the server checks every CONNECTIONS_CHECK_MS.
 */
export const REQUEST_TIMEOUT_MS = 15_000;
const CONNECTIONS_CHECK_MS = 1_000;
/** On close, requests still running after this are cut off. */
const CLOSE_GRACE_MS = 10_000;

/** Sent with every response. The CSP allows no script at all, and styles only from this server. */
const SECURITY_HEADERS: Readonly<Record<string, string>> = {
  'content-security-policy': "default-src 'none'; style-src 'self'; img-src 'self' https: data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
  'referrer-policy': 'no-referrer',
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
  'cross-origin-opener-policy': 'same-origin',
  'cross-origin-resource-policy': 'same-origin',
};

const TEXT = 'text/plain; charset=utf-8';
const OUT_OF_DATE_TEXT = 'This link is out of date: the address subscribed again since. Nothing changed; use the link in a more recent bulletin.\n';

export async function startWebServer(app: App, options: WebServerOptions): Promise<RunningWebServer> {
  const log = options.log ?? (() => undefined);
  const server = Fastify({
    logger: false,
    bodyLimit: BODY_LIMIT,
    requestTimeout: REQUEST_TIMEOUT_MS,
    // Node checks these limits only every 30 s by default, which lets a slow client hold on for 45 s.
    serverFactory: (handler) =>
      createServer({ requestTimeout: REQUEST_TIMEOUT_MS, headersTimeout: REQUEST_TIMEOUT_MS, connectionsCheckingInterval: CONNECTIONS_CHECK_MS }, handler),
    return503OnClosing: true,
    // Behind a reverse proxy on this machine (the usual setup), the client is the one it names in
    // X-Forwarded-For; a client connecting directly cannot claim another address that way.
    trustProxy: 'loopback',
    // A token is 40 characters; longer ones must still reach the route and get the one 404 page.
    routerOptions: { maxParamLength: 1000 },
    // A URL the router cannot even decode (bad %-escapes) is one more link that is not valid. These
    // answers skip the hooks, so the headers are set here.
    frameworkErrors: (_error, request, reply) => {
      const plain = reply as unknown as FastifyReply;
      plain.headers(SECURITY_HEADERS).header('cache-control', 'no-store');
      return htmlReply(plain.code(404), missingPage(request.url));
    },
  });

  // Registered first, so that everything below (parsers, rate limit, static files) answers through them.
  server.addHook('onSend', async (request, reply) => {
    reply.headers(SECURITY_HEADERS);
    if (request.url.startsWith('/u/')) reply.header('cache-control', 'no-store');
  });
  server.setNotFoundHandler((request, reply) => htmlReply(reply.code(404), missingPage(request.url)));
  server.setErrorHandler((error: Error & { statusCode?: number }, request: FastifyRequest, reply: FastifyReply) => {
    const status = errorStatus(error);
    if (status === 403 || status === 404) return htmlReply(reply.code(404), missingPage(request.url));
    if (status >= 500) log(`bulletin serve: ${request.method} ${request.routeOptions.url ?? 'unknown route'} failed: ${error.message}`);
    const message =
      status === 413
        ? `Request body too large (at most ${BODY_LIMIT} bytes).`
        : status === 429
          ? 'Too many requests from your address; try again in a minute.'
          : status === 503
            ? 'The service is unavailable for a moment; try again shortly.'
            : status < 500
              ? 'Bad request.'
              : 'Something went wrong on our side.';
    return htmlReply(reply.code(status), errorPage(status, message));
  });

  await server.register(fastifyFormbody, { bodyLimit: BODY_LIMIT });
  server.addContentTypeParser('multipart/form-data', { parseAs: 'buffer', bodyLimit: BODY_LIMIT }, async (request: FastifyRequest, body: Buffer) =>
    parseFormData(body, request.headers['content-type'] ?? ''),
  );
  // Anything else (text/plain, JSON, no type) is read and ignored: such a POST is not an unsubscribe.
  server.removeContentTypeParser('application/json');
  server.addContentTypeParser('*', { parseAs: 'buffer', bodyLimit: BODY_LIMIT }, (_request, _body, done) => done(null, {}));
  await server.register(fastifyRateLimit, {
    global: false,
    errorResponseBuilder: (_request, context) => Object.assign(new Error('rate limited'), { statusCode: context.statusCode }),
  });

  server.get('/healthz', async (_request, reply) => {
    const health = await checkHealth(app);
    return reply
      .code(health.status === 'ok' ? 200 : 503)
      .header('cache-control', 'no-store')
      .type('application/json')
      .send(health);
  });
  const observer = options.observer;
  if (observer?.answered) {
    const answered = observer.answered.bind(observer);
    server.addHook('onResponse', async (_request, reply) => answered(reply.statusCode));
  }
  const metrics = observer?.metrics;
  if (metrics) {
    server.get('/metrics', async (_request, reply) =>
      reply
        .header('cache-control', 'no-store')
        .type(metrics.contentType)
        .send(await metrics.text()),
    );
  }
  server.get('/favicon.ico', async (_request, reply) => reply.code(204).header('cache-control', 'public, max-age=86400').send());
  server.get(STYLESHEET_PATH, async (_request, reply) =>
    reply.type('text/css; charset=utf-8').header('cache-control', 'public, max-age=86400').send(STYLESHEET),
  );

  server.get<{ Params: { token: string } }>('/u/:token', async (request, reply) => {
    const owner = await describeLink(app, request.params.token);
    if (owner === null) return htmlReply(reply.code(404), invalidLinkPage());
    if (owner === OUT_OF_DATE) return htmlReply(reply.code(410), outOfDatePage());
    return htmlReply(reply, linkPage(owner, request.params.token));
  });

  server.get<{ Params: { slug: string } }>('/help/:slug', async (request, reply) => {
    const help = await listHelp(app, request.params.slug);
    if (help === null) return htmlReply(reply.code(404), notFoundPage());
    return htmlReply(reply.header('cache-control', 'public, max-age=300'), helpPage(help));
  });

  const isOneClick = (body: unknown): boolean => (body as Record<string, unknown> | undefined)?.['List-Unsubscribe'] === 'One-Click';
  server.post<{ Params: { token: string }; Body: Record<string, unknown> | undefined }>(
    '/u/:token',
    {
      config: {
        rateLimit: {
          max: options.postsPerMinute ?? 30,
          timeWindow: '1 minute',
          // After the body is parsed, so a valid one-click (providers send them from a few shared
          // addresses) is told apart from a forged one; only the signature is checked, no lookup.
          hook: 'preHandler',
          allowList: async (request: FastifyRequest) => isOneClick(request.body) && (await tokenVerifies(app, (request.params as { token: string }).token)),
        },
      },
    },
    async (request, reply) => {
      const token = request.params.token;
      const body = request.body ?? {};
      if (isOneClick(body)) {
        // RFC 8058: a mail client's one-click; answer in words, no redirect, no cookie.
        const result = await leaveByLink(app, token, 'one-click');
        if (result === null) return reply.code(404).type(TEXT).send('This link is not valid.\n');
        if (result === OUT_OF_DATE) return reply.code(410).type(TEXT).send(OUT_OF_DATE_TEXT);
        if (result.outcome === 'unsubscribed') observer?.unsubscribed?.('one-click', result.owner.list.slug);
        return reply.type(TEXT).send(`Unsubscribed: ${result.owner.maskedAddress} will get no more bulletins from ${result.owner.list.name}.\n`);
      }
      if (body.action === 'unsubscribe') {
        const result = await leaveByLink(app, token, 'page');
        if (result === null) return htmlReply(reply.code(404), invalidLinkPage());
        if (result === OUT_OF_DATE) return htmlReply(reply.code(410), outOfDatePage());
        if (result.outcome === 'unsubscribed') observer?.unsubscribed?.('page', result.owner.list.slug);
        return htmlReply(reply, leftPage(result.owner, token));
      }
      if (body.action === 'resubscribe') {
        // Only from our own page: a form elsewhere must not put someone back on a list.
        if (!isSameOrigin(request, await linkOrigins(app, token))) return htmlReply(reply.code(403), crossOriginPage());
        const result = await rejoinByLink(app, token);
        if (result === null) return htmlReply(reply.code(404), invalidLinkPage());
        if (result === OUT_OF_DATE) return htmlReply(reply.code(410), outOfDatePage());
        if (result.outcome === 'not possible') return htmlReply(reply.code(409), cannotRejoinPage(result.owner));
        return htmlReply(reply, rejoinedPage(result.owner));
      }
      return reply.code(400).type(TEXT).send('Nothing to do: send List-Unsubscribe=One-Click (RFC 8058), or use the button on the page.\n');
    },
  );

  if (options.archiveDir) {
    await server.register(fastifyStatic, {
      root: options.archiveDir,
      prefix: '/archive/',
      index: ['index.html'],
      redirect: true,
      dotfiles: 'deny',
      // An Atom feed is application/atom+xml (RFC 4287), which feed readers look for; by its
      // extension alone it would be served as application/xml.
      setHeaders: (reply, path) => {
        if (path.endsWith('/feed.xml')) reply.header('content-type', 'application/atom+xml; charset=utf-8');
      },
    });
  }

  try {
    await server.listen({ host: options.host, port: options.port });
  } catch (error) {
    await server.close().catch(() => undefined);
    const code = (error as NodeJS.ErrnoException).code;
    const why =
      code === 'EADDRINUSE'
        ? 'the port is in use'
        : code === 'EADDRNOTAVAIL' || code === 'ENOTFOUND'
          ? 'no such address on this machine'
          : code === 'EACCES'
            ? 'permission denied'
            : (error as Error).message;
    throw new BulletinError('CONFIG', `Cannot listen on ${options.host} port ${options.port}: ${why}.`, { cause: error });
  }
  const address = server.server.address();
  const port = typeof address === 'object' && address ? address.port : options.port;
  const host = options.host.includes(':') ? `[${options.host}]` : options.host;
  return {
    url: `http://${host}:${port}`,
    port,
    async close() {
      const cutOff = setTimeout(() => server.server.closeAllConnections(), CLOSE_GRACE_MS);
      cutOff.unref();
      try {
        await server.close();
      } finally {
        clearTimeout(cutOff);
      }
    },
  };
}

function errorStatus(error: Error & { statusCode?: number }): number {
  const status = error.statusCode;
  if (typeof status === 'number' && status >= 400 && status <= 599) return status;
  if ((error instanceof BulletinError && error.code === 'DATABASE_UNAVAILABLE') || isConnectionError(error)) return 503;
  return 500;
}

/** Under /u/, anything not found is the one "link not valid" page; elsewhere a plain "not found". */
function missingPage(url: string): string {
  return url.startsWith('/u/') ? invalidLinkPage() : notFoundPage();
}

function htmlReply(reply: FastifyReply, page: string): FastifyReply {
  return reply.type('text/html; charset=utf-8').send(page);
}
