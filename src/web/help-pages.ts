// The pages of `bulletin serve` about leaving beyond the link's own: a list's help page (List-Help),
// "this link is out of date" (a link of an earlier subscription), and the refusal of a resubscribe
// from another site. Plain HTML5 like pages.ts; every text from data is escaped by `html`.
import type { ListHelp } from '../app/help.js';
import { html } from '../domain/html.js';
import { page } from './pages.js';

/** What the list is, how to leave it (link, mail program, mail) and whom to write to. */
export function helpPage(help: ListHelp): string {
  const contact = help.contact.name === '' ? help.contact.address : `${help.contact.name} <${help.contact.address}>`;
  return page(
    `About ${help.name}`,
    html`<p class="list">${help.name}</p><h1>About ${help.name}</h1>
${help.description === '' ? html`` : html`<p>${help.description}</p>`}
<p>${help.name} is an announcement list: its bulletins are sent to its subscribers, and nobody can post to it.</p>
<h2>How to leave</h2>
<ul>
<li>Open the unsubscribe link at the end of any bulletin and press the button, or use your mail program's Unsubscribe button: it leaves at once.</li>
<li>Or send a mail to <a href="mailto:${help.unsubscribeMailbox}">${help.unsubscribeMailbox}</a> from the unsubscribe link of a bulletin (your mail program fills in the subject: it must keep the code the link carries).</li>
</ul>
<h2>Questions</h2>
<p>Write to <a href="mailto:${help.contact.address}?subject=help">${contact}</a>.</p>
<p class="small">Past bulletins: <a href="${help.archiveUrl}">the archive</a>.</p>`,
  );
}

/** A link made for an earlier subscription: it changes nothing. */
export function outOfDatePage(): string {
  return page(
    'Link out of date',
    html`<h1>This link is out of date</h1>
<p>The address subscribed again after this bulletin was sent, so this link no longer changes anything. Use the unsubscribe link of a more recent bulletin.</p>`,
  );
}

/** A resubscribe POST that did not come from our own page. */
export function crossOriginPage(): string {
  return page(
    'Not from this site',
    html`<h1>Subscribing again works only from this site's own page</h1>
<p>Open the link from your bulletin and use the button there.</p>`,
  );
}
