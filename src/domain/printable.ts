// Text from outside (a CSV file, the command line) shown on a terminal: control characters, and
// the bidirectional controls that reorder what is shown, are written as escapes (\r, \x1b,
// \u202e), so a file cannot move the cursor, recolour the screen or hide part of a line. No I/O.

const UNPRINTABLE = /[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g;
const NAMED: Readonly<Record<string, string>> = { '\n': '\\n', '\r': '\\r', '\t': '\\t' };

/** The text with unprintable characters escaped; longer than `max` characters, cut with "…". */
export function printable(text: string, max = 200): string {
  const shown = text.length > max ? `${text.slice(0, max)}…` : text;
  return shown.replace(UNPRINTABLE, (char) => {
    const named = NAMED[char];
    if (named !== undefined) return named;
    const code = char.charCodeAt(0);
    return code < 0x100 ? `\\x${code.toString(16).padStart(2, '0')}` : `\\u${code.toString(16).padStart(4, '0')}`;
  });
}
