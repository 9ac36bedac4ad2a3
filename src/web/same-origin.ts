// Whether a POST comes from a page of ours (the resubscribe button), by what the browser says: its
// Sec-Fetch-Site, else its Origin compared with this server's origin or the list's public one.
// A request saying neither (not a browser form of ours) is not same-origin.
import type { FastifyRequest } from 'fastify';

/** `publicOrigins`: the origins the pages are served under (a list's --base-url behind a proxy). */
export function isSameOrigin(request: FastifyRequest, publicOrigins: readonly string[] = []): boolean {
  const site = request.headers['sec-fetch-site'];
  if (typeof site === 'string') return site === 'same-origin';
  const origin = request.headers.origin;
  if (typeof origin !== 'string' || origin === 'null') return false;
  let claimed: string;
  try {
    claimed = new URL(origin).origin;
  } catch {
    return false;
  }
  const own = `${request.protocol}://${request.host}`;
  return claimed === safeOrigin(own) || publicOrigins.includes(claimed);
}

function safeOrigin(url: string): string | null {
  try {
    return new URL(url).origin;
  } catch {
    return null;
  }
}
