// Whether this process can do its work: the database answers. What `bulletin serve` says at /healthz
// to monitors and load balancers.
import { ping } from '../store/database.js';
import type { App } from './context.js';

export type Health = { readonly status: 'ok' } | { readonly status: 'unavailable'; readonly reason: string };

export async function checkHealth(app: App): Promise<Health> {
  try {
    await ping(app.db);
    return { status: 'ok' };
  } catch {
    // Monitors see the state, not the error (which may name the database server).
    return { status: 'unavailable', reason: 'database not reachable' };
  }
}
