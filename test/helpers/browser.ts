// A real headless browser for page tests: Debian's chromium driven by playwright-core (never a
// downloaded browser), and a folder where tests leave screenshots for a reviewer to look at.
import { mkdir } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { chromium, type Browser } from 'playwright-core';

export const CHROMIUM_PATH = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

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
