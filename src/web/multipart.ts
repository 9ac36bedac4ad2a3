// Reads the fields of a small multipart/form-data body (RFC 7578), the second encoding RFC 8058
// allows for a one-click unsubscribe. Bodies here are a few hundred bytes (the server refuses more
// than 4 KB), so the whole body is parsed at once; file parts are ignored.

/** The boundary parameter of a multipart/form-data Content-Type, or null. */
export function boundaryOf(contentType: string | undefined): string | null {
  const match = /;\s*boundary=(?:"([^"]{1,70})"|([^\s;"]{1,70}))/i.exec(contentType ?? '');
  return match ? (match[1] ?? match[2] ?? null) : null;
}

/** Field name → value for every non-file part; malformed parts are skipped. */
export function parseMultipartFields(body: string, boundary: string): Record<string, string> {
  const fields: Record<string, string> = {};
  const delimiter = `--${boundary}`;
  const parts = body.split(delimiter).slice(1); // before the first delimiter: preamble
  for (const raw of parts) {
    if (raw.startsWith('--')) break; // the closing delimiter
    const part = raw.replace(/^\r?\n/, '');
    const split = /\r?\n\r?\n/.exec(part);
    if (!split) continue;
    const headers = part.slice(0, split.index);
    const disposition = /^content-disposition:\s*form-data\s*;(.*)$/im.exec(headers)?.[1] ?? '';
    const name = /(?:^|;)\s*name="([^"]*)"/i.exec(disposition)?.[1];
    if (name === undefined || /(?:^|;)\s*filename=/i.test(disposition)) continue;
    fields[name] = part.slice(split.index + split[0].length).replace(/\r?\n$/, '');
  }
  return fields;
}
