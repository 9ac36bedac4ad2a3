// Escaping for HTML and XML, and a tagged template that escapes every interpolation unless it is
// Html already: the one way pages of `bulletin serve` and the archive put data into markup. No I/O.

const ESCAPES: Readonly<Record<string, string>> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

/** Escapes text for HTML (and XML) content and double-quoted attributes. */
export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (character) => ESCAPES[character] as string);
}

/** A tagged template whose interpolations are escaped unless they are Html already. */
export class Html {
  constructor(readonly text: string) {}
  toString(): string {
    return this.text;
  }
}

export function html(strings: TemplateStringsArray, ...values: readonly (string | number | Html | readonly Html[])[]): Html {
  let out = strings[0] ?? '';
  values.forEach((value, index) => {
    if (value instanceof Html) out += value.text;
    else if (Array.isArray(value)) out += value.map((item) => item.text).join('');
    else out += escapeHtml(String(value));
    out += strings[index + 1] ?? '';
  });
  return new Html(out);
}
