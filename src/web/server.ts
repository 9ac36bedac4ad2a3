// `bulletin serve`: the HTTP server behind the links in every bulletin. GET /u/<token> shows a page
// (and never changes anything: link scanners fetch every URL); POST /u/<token> unsubscribes, from a
// mail client's one-click (RFC 8058) or the page's button, and undoes it from the confirmation.
// Also GET /healthz for monitors and the exported web archive under /archive/.
import fastifyFormbody from '@fastify/formbody';
import fastifyRateLimit from '@fastify/rate-limit';
import fastifyStatic from '@fastify/static';
import Fastify, { type FastifyReply, type FastifyRequest } from 'fastify';
import type { App } from '../app/context.js';
import { describeLink, leaveByLink, rejoinByLink } from '../app/unsubscribe.js';
import { boundaryOf, parseMultipartFields } from './multipart.js';
import { cannotRejoinPage, invalidLinkPage, leftPage, linkPage, notFoundPage, rejoinedPage, STYLESHEET, STYLESHEET_PATH } from './pages.js';

export interface WebServerOptions {
  readonly host: string;
  /** 0: any free port. */
  readonly port: number;
  /** The exported archive to serve under /archive/ (`bulletin archive export --out DIR`). */
  readonly archiveDir?: string | null;
  /** POSTs a client (by IP address) may make per minute; default 30. */
  readonly postsPerMinute?: number;
}

export interface RunningWebServer {
  /** http://host:port */
  readonly url: string;
  readonly port: number;
  close(): Promise<void>;
}

const BODY_LIMIT = 4096;

/** Sent with every response. The CSP allows no script at all, and styles only from this server. */
const SECURITY_HEADERS: Readonly<Record<string, string>> = {
  'content-security-policy':
    "default-src 'none'; style-src 'self'; img-src 'self' https: data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
  'referrer-policy': 'no-referrer',
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
  'cross-origin-opener-policy': 'same-origin',
};

export async function startWebServer(app: App, options: WebServerOptions): Promise<RunningWebServer> {
  const server = Fastify({ logger: false, bodyLimit: BODY_LIMIT, return503OnClosing: true });
  server.addHook('onSend', async (request, reply) => {
    for (const [name, value] of Object.entries(SECURITY_HEADERS)) reply.header(name, value);
    if (request.url.startsWith('/u/')) reply.header('cache-control', 'no-store');
  });
  await server.register(fastifyFormbody, { bodyLimit: BODY_LIMIT });
  server.addContentTypeParser('multipart/form-data', { parseAs: 'string', bodyLimit: BODY_LIMIT }, (request, body, done) => {
    const boundary = boundaryOf(request.headers['content-type']);
    done(null, boundary === null ? {} : parseMultipartFields(String(body), boundary));
  });
  // Anything else (text/plain, JSON, no type) is read and ignored: such a POST is not an unsubscribe.
  server.addContentTypeParser('*', { parseAs: 'string', bodyLimit: BODY_LIMIT }, (_request, _body, done) => done(null, {}));
  await server.register(fastifyRateLimit, { global: false });

  server.get('/healthz', async (_request, reply) => {
    await app.db.query('SELECT 1');
    return reply.type('application/json').send({ status: 'ok' });
  });
  server.get('/favicon.ico', async (_request, reply) => reply.code(204).header('cache-control', 'public, max-age=86400').send());
  server.get(STYLESHEET_PATH, async (_request, reply) => reply.type('text/css; charset=utf-8').header('cache-control', 'public, max-age=86400').send(STYLESHEET));

  server.get<{ Params: { token: string } }>('/u/:token', async (request, reply) => {
    const owner = await describeLink(app, request.params.token);
    if (owner === null) return htmlReply(reply.code(404), invalidLinkPage());
    return htmlReply(reply, linkPage(owner, request.params.token));
  });

  server.post<{ Params: { token: string }; Body: Record<string, unknown> | undefined }>(
    '/u/:token',
    { config: { rateLimit: { max: options.postsPerMinute ?? 30, timeWindow: '1 minute' } } },
    async (request, reply) => {
      const token = request.params.token;
      const body = request.body ?? {};
      if (body['List-Unsubscribe'] === 'One-Click') {
        // RFC 8058: a mail client's one-click; answer in words, no redirect, no cookie.
        const result = await leaveByLink(app, token, 'one-click');
        if (result === null) return reply.code(404).type('text/plain; charset=utf-8').send('This link is not valid.\n');
        return reply.type('text/plain; charset=utf-8').send(`Unsubscribed: ${result.owner.maskedAddress} will get no more bulletins from ${result.owner.list.name}.\n`);
      }
      if (body.action === 'unsubscribe') {
        const result = await leaveByLink(app, token, 'page');
        if (result === null) return htmlReply(reply.code(404), invalidLinkPage());
        return htmlReply(reply, leftPage(result.owner, token));
      }
      if (body.action === 'resubscribe') {
        const result = await rejoinByLink(app, token);
        if (result === null) return htmlReply(reply.code(404), invalidLinkPage());
        if (result.outcome === 'not possible') return htmlReply(reply.code(409), cannotRejoinPage(result.owner));
        return htmlReply(reply, rejoinedPage(result.owner));
      }
      return reply.code(400).type('text/plain; charset=utf-8').send('Nothing to do: send List-Unsubscribe=One-Click (RFC 8058), or use the button on the page.\n');
    },
  );

  if (options.archiveDir) {
    await server.register(fastifyStatic, { root: options.archiveDir, prefix: '/archive/', index: ['index.html'], redirect: true, dotfiles: 'deny' });
  }

  server.setNotFoundHandler((_request, reply) => htmlReply(reply.code(404), notFoundPage()));
  server.setErrorHandler((error: Error & { statusCode?: number }, request: FastifyRequest, reply: FastifyReply) => {
    const status = error.statusCode ?? 500;
    if (status >= 500) request.log.error(error);
    const message = status === 413 ? 'Request body too large.' : status === 429 ? 'Too many requests; try again in a minute.' : status < 500 ? 'Bad request.' : 'Something went wrong on our side.';
    return reply.code(status).type('text/plain; charset=utf-8').send(`${message}\n`);
  });

  await server.listen({ host: options.host, port: options.port });
  const address = server.server.address();
  const port = typeof address === 'object' && address ? address.port : options.port;
  const host = options.host.includes(':') ? `[${options.host}]` : options.host;
  return {
    url: `http://${host}:${port}`,
    port,
    close: () => server.close(),
  };
}

function htmlReply(reply: FastifyReply, page: string): FastifyReply {
  return reply.type('text/html; charset=utf-8').send(page);
}
