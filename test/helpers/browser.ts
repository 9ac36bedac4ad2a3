// A real headless browser for page tests: Debian's chromium driven by playwright-core (never a
// downloaded browser), and a folder where tests leave screenshots for a reviewer to look at. Without
// the browser, browser tests are skipped with the reason, unless BULLETIN_REQUIRE_BROWSER=1 (CI).
import { accessSync, constants } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { chromium, type Browser } from 'playwright-core';

export const CHROMIUM_PATH = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const REQUIRED = process.env.BULLETIN_REQUIRE_BROWSER === '1';

function executable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

const MISSING = `no chromium at ${CHROMIUM_PATH}: install it with \`apt-get install chromium\` (or set CHROMIUM_PATH)`;

/**
 * For `describe(name, { skip: BROWSER_SKIP }, …)`: false when the browser is there (or required),
 * else the one-line reason printed with the skipped test.
 */
export const BROWSER_SKIP: string | false = executable(CHROMIUM_PATH) || REQUIRED ? false : MISSING;

/** Screenshots land in test-output/screenshots/<group>/ (not committed). */
export async function screenshotDir(group: string): Promise<string> {
  const dir = resolve(import.meta.dirname, '..', '..', 'test-output', 'screenshots', group);
  await mkdir(dir, { recursive: true });
  return dir;
}

export function screenshotPath(dir: string, name: string): string {
  return join(dir, `${name}.png`);
}

export async function launchBrowser(): Promise<Browser> {
  if (!executable(CHROMIUM_PATH)) throw new Error(`BULLETIN_REQUIRE_BROWSER=1, but there is ${MISSING}`);
  return chromium.launch({
    executablePath: CHROMIUM_PATH,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
}
