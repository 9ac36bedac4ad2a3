// Reads the text fields of a multipart/form-data body (RFC 7578), the second encoding RFC 8058 allows
// for a one-click unsubscribe, with Node's own parser (the fetch API's Response.formData(), undici):
// no hand-written MIME parsing. File parts are ignored; a malformed body is a 400.
import { BulletinError } from '../domain/errors.js';

export async function parseFormData(body: Buffer, contentType: string): Promise<Record<string, string>> {
  let form: FormData;
  try {
    form = await new Response(body, { headers: { 'content-type': contentType } }).formData();
  } catch {
    throw Object.assign(new BulletinError('BAD_INPUT', 'The multipart/form-data body is malformed.'), { statusCode: 400 });
  }
  const fields: Record<string, string> = {};
  for (const [name, value] of form) if (typeof value === 'string' && !(name in fields)) fields[name] = value;
  return fields;
}
