// Who holds a claimed delivery: `<host>:<pid>:<nonce>`, written by the dispatcher into each claim and
// read back by a resume to tell a dead sender on this host from a live one. One type, one format,
// one parser: the contract between the engine that claims and the use case that reclaims.

export interface ClaimOwner {
  readonly host: string;
  readonly pid: number;
  readonly nonce: string;
}

export function formatClaimOwner(owner: ClaimOwner): string {
  return `${owner.host}:${owner.pid}:${owner.nonce}`;
}

/** Null for a string this format did not write. */
export function parseClaimOwner(text: string): ClaimOwner | null {
  const [host, pid, ...rest] = text.split(':');
  if (host === undefined || pid === undefined || !/^\d+$/.test(pid)) return null;
  return { host, pid: Number(pid), nonce: rest.join(':') };
}
