// Loads the e-mail layouts and partials of a bulletin: `templates/email/` shipped with bulletin,
// overridden file by file by a list's or the command line's templates directory.
// The result is plain data, so the send engine can store exactly what a bulletin was built with.
import { readdir, readFile, stat } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { join, relative, isAbsolute } from 'node:path';
import { BulletinError } from '../domain/errors.js';
import { formatBytes, MAX_TEMPLATE_FILE_BYTES } from './limits.js';

export interface TemplateFile {
  /** Where the text came from, as shown in error messages. */
  readonly path: string;
  readonly text: string;
}

export interface TemplateSet {
  /** `email/layout.html.hbs`: must contain `{{{body}}}` at its top level. */
  readonly htmlLayout: TemplateFile;
  /** `email/layout.text.hbs`: must contain `{{{body}}}` at its top level. */
  readonly textLayout: TemplateFile;
  /** `email/partials/<name>.hbs`, used as `{{> name}}`. */
  readonly partials: Readonly<Record<string, TemplateFile>>;
}

/** The `templates/` directory shipped with bulletin. */
export const DEFAULT_TEMPLATES_DIR = fileURLToPath(new URL('../../templates/', import.meta.url));

const PARTIAL_NAME = /^([A-Za-z0-9][A-Za-z0-9_-]*)\.hbs$/;

function shownPath(path: string): string {
  const fromHere = relative(process.cwd(), path);
  return fromHere !== '' && !fromHere.startsWith('..') && !isAbsolute(fromHere) ? fromHere : path;
}

async function readIfPresent(path: string): Promise<TemplateFile | null> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw new BulletinError('BAD_INPUT', `Template ${path} cannot be read.`, { cause: error });
  }
  const bytes = Buffer.byteLength(text);
  if (bytes > MAX_TEMPLATE_FILE_BYTES) {
    throw new BulletinError(
      'BAD_INPUT',
      `${shownPath(path)}:1:1: the template is ${formatBytes(bytes)}; a layout or partial may be at most ${formatBytes(MAX_TEMPLATE_FILE_BYTES)}.`,
    );
  }
  return { path: shownPath(path), text };
}

async function partialFiles(dir: string): Promise<Record<string, TemplateFile>> {
  let names: string[];
  try {
    names = await readdir(join(dir, 'email', 'partials'));
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return {};
    throw error;
  }
  const partials: Record<string, TemplateFile> = {};
  for (const name of names.sort()) {
    const match = PARTIAL_NAME.exec(name);
    if (match === null) continue;
    const file = await readIfPresent(join(dir, 'email', 'partials', name));
    if (file !== null) partials[match[1]!] = file;
  }
  return partials;
}

/**
 * The template set for a bulletin. `overrideDir` (a list's or `--templates` directory, laid out like
 * `templates/`) replaces the shipped files it contains; the others stay the shipped ones.
 */
export async function loadTemplateSet(overrideDir?: string | null): Promise<TemplateSet> {
  const dirs = [DEFAULT_TEMPLATES_DIR];
  if (overrideDir !== undefined && overrideDir !== null) {
    const info = await stat(overrideDir).catch(() => null);
    if (info === null || !info.isDirectory()) {
      throw new BulletinError('NOT_FOUND', `Templates directory ${overrideDir} does not exist.`);
    }
    dirs.push(overrideDir);
  }
  let htmlLayout: TemplateFile | null = null;
  let textLayout: TemplateFile | null = null;
  let partials: Record<string, TemplateFile> = {};
  for (const dir of dirs) {
    htmlLayout = (await readIfPresent(join(dir, 'email', 'layout.html.hbs'))) ?? htmlLayout;
    textLayout = (await readIfPresent(join(dir, 'email', 'layout.text.hbs'))) ?? textLayout;
    partials = { ...partials, ...(await partialFiles(dir)) };
  }
  if (htmlLayout === null || textLayout === null) {
    throw new BulletinError('INTERNAL', `The shipped layouts are missing from ${DEFAULT_TEMPLATES_DIR}email/.`);
  }
  return { htmlLayout, textLayout, partials };
}
