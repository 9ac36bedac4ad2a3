// The HTML pages of `bulletin serve`: the unsubscribe page a link opens, its confirmation with the
// undo button, and the one "link not valid" page. Plain HTML5, no JavaScript, one stylesheet;
// every text that comes from data is escaped here, by `html`.
import type { LinkOwner } from '../app/unsubscribe.js';
import { Html, html } from '../domain/html.js';

export const STYLESHEET_PATH = '/assets/bulletin.css';

export const STYLESHEET = `:root { color-scheme: light dark; --accent: #1d4f91; }
* { box-sizing: border-box; }
body { margin: 0; font: 1.05rem/1.55 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; background: Canvas; color: CanvasText; }
main { max-width: 34rem; margin: 3rem auto; padding: 0 1.25rem; }
h1 { font-size: 1.5rem; line-height: 1.25; margin: 0 0 1rem; }
.list { text-transform: uppercase; letter-spacing: .06em; font-size: .8rem; opacity: .75; margin: 0 0 .5rem; }
form { margin: 1.5rem 0; }
button { font: inherit; padding: .65rem 1.3rem; border-radius: .4rem; border: 1px solid var(--accent); background: var(--accent); color: #fff; cursor: pointer; }
button.secondary { background: transparent; color: inherit; border-color: currentColor; }
.small { font-size: .9rem; opacity: .8; }
@media (prefers-color-scheme: dark) { :root { --accent: #6ea0e6; } button { color: #000; } }
`;

export function page(title: string, body: Html): string {
  return html`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex">
<title>${title}</title>
<link rel="stylesheet" href="${STYLESHEET_PATH}">
</head>
<body>
<main>
${body}
</main>
</body>
</html>
`.text;
}

function listLine(owner: LinkOwner): Html {
  return html`<p class="list">${owner.list.name}</p>`;
}

function button(action: 'unsubscribe' | 'resubscribe', label: string, token: string, secondary = false): Html {
  return html`<form method="post" action="/u/${token}">
<input type="hidden" name="action" value="${action}">
<button type="submit"${secondary ? new Html(' class="secondary"') : new Html('')}>${label}</button>
</form>`;
}

/** What a GET of the link shows: who, which list, and a button. Changes nothing. */
export function linkPage(owner: LinkOwner, token: string): string {
  if (owner.status !== 'active') {
    return page(
      `Not subscribed to ${owner.list.name}`,
      html`${listLine(owner)}<h1>${owner.maskedAddress} is not subscribed</h1>
<p>${owner.maskedAddress} gets no bulletins from ${owner.list.name}.</p>
${owner.canUndo ? button('resubscribe', 'Subscribe again', token, true) : html`<p class="small">To get them again, please ask the list's owners.</p>`}`,
    );
  }
  return page(
    `Unsubscribe from ${owner.list.name}`,
    html`${listLine(owner)}<h1>Unsubscribe ${owner.maskedAddress}?</h1>
<p>You will get no more bulletins from ${owner.list.name} at ${owner.maskedAddress}.</p>
${button('unsubscribe', 'Unsubscribe', token)}
<p class="small">Nothing changes until you press the button.</p>`,
  );
}

/** After the button: done, and an undo (when this link may undo it: see UNDO_WINDOW_MS). */
export function leftPage(owner: LinkOwner, token: string): string {
  return page(
    `Unsubscribed from ${owner.list.name}`,
    html`${listLine(owner)}<h1>You are unsubscribed</h1>
<p>${owner.maskedAddress} will get no more bulletins from ${owner.list.name}, starting now.</p>
${
  owner.canUndo
    ? html`<p class="small">Pressed it by mistake?</p>
${button('resubscribe', 'Resubscribe', token, true)}`
    : html``
}`,
  );
}

export function rejoinedPage(owner: LinkOwner): string {
  return page(
    `Subscribed to ${owner.list.name}`,
    html`${listLine(owner)}<h1>You are subscribed again</h1>
<p>${owner.maskedAddress} will get ${owner.list.name} bulletins again.</p>`,
  );
}

export function cannotRejoinPage(owner: LinkOwner): string {
  return page(
    `Cannot subscribe from here`,
    html`${listLine(owner)}<h1>This address cannot be subscribed from here</h1>
<p>${owner.maskedAddress} left ${owner.list.name} too long ago, or for another reason (for example, mail to it bounced). Please ask the list's owners.</p>`,
  );
}

/** The one answer to any link that does not verify: it says nothing about any address. */
export function invalidLinkPage(): string {
  return page(
    'Link not valid',
    html`<h1>This link is not valid</h1>
<p>The link may be incomplete: copy the whole link from the bulletin, or use the unsubscribe link of a more recent bulletin.</p>`,
  );
}

export function notFoundPage(): string {
  return page('Not found', html`<h1>Not found</h1><p>There is nothing at this address.</p>`);
}

/** Any other refusal or failure (400, 413, 429, 5xx): the status in words, nothing more. */
export function errorPage(status: number, message: string): string {
  return page(`Error ${status}`, html`<h1>${message}</h1>`);
}
