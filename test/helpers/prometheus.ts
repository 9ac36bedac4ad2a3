// Reads Prometheus text exposition format (version 0.0.4) as a scraper would: `# HELP` and `# TYPE`
// lines, then one sample per line (name, labels, value), so tests assert on what /metrics says.

export interface Sample {
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly value: number;
}

export interface Scrape {
  readonly samples: readonly Sample[];
  /** `# TYPE` of each metric family: counter, gauge, histogram, summary, untyped. */
  readonly types: ReadonlyMap<string, string>;
  readonly help: ReadonlyMap<string, string>;
  /** The samples of `name` whose labels include `labels`. */
  select(name: string, labels?: Record<string, string>): Sample[];
  /** The one sample's value (undefined when there is none; throws when several match). */
  value(name: string, labels?: Record<string, string>): number | undefined;
  /** The sum of the matching samples' values (0 when none). */
  sum(name: string, labels?: Record<string, string>): number;
}

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*/;

/** A float as Go's ParseFloat reads it (Prometheus does): NaN and Inf in any case (prom-client writes `Nan`). */
function parseValue(text: string): number {
  const lower = text.toLowerCase();
  if (lower === '+inf' || lower === 'inf') return Infinity;
  if (lower === '-inf') return -Infinity;
  if (lower === 'nan') return NaN;
  const value = Number(text);
  if (text === '' || Number.isNaN(value)) throw new Error(`not a sample value: "${text}"`);
  return value;
}

/** `{a="1",b="x \"y\""}` at the start of `text`: the labels and the length read. */
function parseLabels(text: string): { labels: Record<string, string>; length: number } {
  const labels: Record<string, string> = {};
  let at = 1;
  for (;;) {
    while (text[at] === ' ' || text[at] === ',') at++;
    if (text[at] === '}') return { labels, length: at + 1 };
    const name = NAME.exec(text.slice(at))?.[0];
    if (name === undefined || text[at + name.length] !== '=' || text[at + name.length + 1] !== '"') throw new Error(`bad labels in: ${text}`);
    at += name.length + 2;
    let value = '';
    for (;;) {
      const char = text[at];
      if (char === undefined) throw new Error(`unterminated label value in: ${text}`);
      if (char === '"') break;
      if (char === '\\') {
        const next = text[at + 1];
        value += next === 'n' ? '\n' : (next ?? '');
        at += 2;
        continue;
      }
      value += char;
      at++;
    }
    labels[name] = value;
    at++;
  }
}

export function parsePrometheus(text: string): Scrape {
  const samples: Sample[] = [];
  const types = new Map<string, string>();
  const help = new Map<string, string>();
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '') continue;
    if (line.startsWith('#')) {
      const meta = /^#\s+(HELP|TYPE)\s+(\S+)\s?(.*)$/.exec(line);
      if (meta?.[1] === 'TYPE') types.set(meta[2] as string, meta[3] as string);
      if (meta?.[1] === 'HELP') help.set(meta[2] as string, meta[3] as string);
      continue;
    }
    const name = NAME.exec(line)?.[0];
    if (name === undefined) throw new Error(`not a sample line: ${line}`);
    let rest = line.slice(name.length);
    let labels: Record<string, string> = {};
    if (rest.startsWith('{')) {
      const parsed = parseLabels(rest);
      labels = parsed.labels;
      rest = rest.slice(parsed.length);
    }
    const [value, timestamp, ...extra] = rest.trim().split(/\s+/);
    if (extra.length > 0 || (timestamp !== undefined && !/^-?\d+$/.test(timestamp))) throw new Error(`bad sample line: ${line}`);
    samples.push({ name, labels, value: parseValue(value ?? '') });
  }
  const select = (name: string, labels: Record<string, string> = {}) =>
    samples.filter((sample) => sample.name === name && Object.entries(labels).every(([key, value]) => sample.labels[key] === value));
  return {
    samples,
    types,
    help,
    select,
    value(name, labels) {
      const found = select(name, labels);
      if (found.length > 1) throw new Error(`${found.length} samples of ${name} match ${JSON.stringify(labels)}`);
      return found[0]?.value;
    },
    sum: (name, labels) => select(name, labels).reduce((total, sample) => total + sample.value, 0),
  };
}

/** GET the URL and parse it (the response must be 200 in the Prometheus text format). */
export async function scrape(url: string): Promise<Scrape> {
  const response = await fetch(url);
  if (response.status !== 200) throw new Error(`GET ${url}: ${response.status}`);
  const type = response.headers.get('content-type') ?? '';
  if (!type.startsWith('text/plain') || !type.includes('version=0.0.4')) throw new Error(`GET ${url}: content-type ${type}`);
  return parsePrometheus(await response.text());
}
