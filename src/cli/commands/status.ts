// `bulletin status [id] [--watch]` and `bulletin deliveries <id>`: where sends stand (counts, pace,
// ETA, pause/pace/cancel, the processes on each with their heartbeats), once or redrawn every second
// (JSON lines when not on a terminal), and a send's deliveries one by one.
import type { Command } from 'commander';
import { listDeliveries } from '../../app/send/deliveries.js';
import { bulletinStatus, liveStatus, SILENT_AFTER_SECONDS, type BulletinStatus, type LiveStatus, type SendProcessStatus } from '../../app/send/status.js';
import type { App } from '../../app/context.js';
import { DELIVERY_STATES } from '../../domain/delivery.js';
import { BulletinError } from '../../domain/errors.js';
import { formatRate } from '../../send/adaptive.js';
import { DatabaseOutage } from '../../send/database-outage.js';
import { parseId, parsePositive, parseStates } from '../arguments.js';
import type { CliContext } from '../context.js';
import { formatDate, formatTable, printJson, printLines } from '../output.js';
import { untilSignal } from '../signals.js';
import { describeAudience } from './audience.js';

/** `--watch` reads and shows the status this often. */
const WATCH_BEAT_MS = 1000;
/** Clears a terminal and puts the cursor at its top left, before each redraw. */
const CLEAR_SCREEN = '\x1b[2J\x1b[H';

export function registerStatusCommands(program: Command, context: CliContext): void {
  program
    .command('status [bulletin-id]')
    .description('every unfinished send with its processes, pace, counts and ETA, then the scheduled ones (with an id: that bulletin)')
    .option('--json', 'print the result as JSON')
    .option('--watch', 'show it again every second until Ctrl-C (with an id: until that send is done); JSON lines when not on a terminal')
    .addHelpText(
      'after',
      `
Without an id: every started, unfinished send (oldest first) — its pause, the pace set by
\`bulletin pace\`, its per-state counts, the rate over the last minute and an ETA, and each process
working on it (host, pid, command, since when, its last heartbeat, its pace, what it sent) — then
the scheduled sends. When no send is unfinished, the latest bulletin. With an id: that bulletin,
in any state. A process whose heartbeat is older than ${SILENT_AFTER_SECONDS} s is shown as silent (stopped, or cut
off from the database).

--json without an id prints { "at", "sends": [...], "scheduled": [...], "latest" } ("latest": the
latest bulletin when no send is unfinished, else null); with an id, that bulletin's object.

--watch redraws the same text once a second on a terminal, until Ctrl-C or SIGTERM (exit 0) or,
with an id, until that send is done (finished, unscheduled, or cancelled with nothing in flight):
it shows its last state and exits 0. Not on a terminal (or with --json) it prints one compact JSON
line a second instead, the object --json prints. While the database does not answer it says so
(a line { "at", "databaseUnreachable": { "since", "error" } }) and keeps watching.

Examples:
  bulletin status
  bulletin status 7 --json
  bulletin status --watch
  bulletin status 7 --watch | jq -c '{open, pace, etaSeconds}'`,
    )
    .action(async (id: string | undefined, flags: { json?: boolean; watch?: boolean }) => {
      const bulletinId = id === undefined ? undefined : parseId(id);
      if (flags.watch) return watchStatus(context, bulletinId, flags.json === true);
      const shown = await context.run((app) => readStatus(app, bulletinId));
      if (!('bulletinId' in shown) && shown.latest === null && shown.sends.length === 0 && shown.scheduled.length === 0) {
        throw new BulletinError('NOT_FOUND', 'No bulletin has been sent yet.');
      }
      if (flags.json) return printJson(context.io, shown);
      printLines(context.io, ...statusLines(shown));
    });

  program
    .command('deliveries <bulletin-id>')
    .description("list a send's deliveries: address, state, attempts, the relay's last reply, and the bounce that failed one")
    .option(
      '--state <states>',
      `only these states, comma-separated (${DELIVERY_STATES.join(', ')}), or in-doubt: every delivery that was uncertain once (perhaps delivered), so a later copy may be a second one`,
    )
    .option('--limit <n>', 'at most this many (default 1000)', parsePositive, 1000)
    .option('--after <id>', 'start after this delivery id (next page)', parsePositive)
    .option('--csv', 'print CSV')
    .option('--json', 'print JSON')
    .action(async (id: string, flags: { state?: string; limit: number; after?: number; csv?: boolean; json?: boolean }) => {
      const chosen = flags.state?.split(',').map((state) => state.trim());
      const inDoubt = chosen?.includes(IN_DOUBT) ?? false;
      const named = chosen?.filter((state) => state !== IN_DOUBT) ?? [];
      const states = flags.state === undefined || named.length === 0 ? null : parseStates(named.join(','), IN_DOUBT);
      const rows = await context.run((app) => listDeliveries(app, parseId(id), { states, inDoubt, afterId: flags.after ?? 0, limit: flags.limit }));
      if (flags.json) return printJson(context.io, rows);
      if (flags.csv) {
        const { stringify } = await import('csv-stringify/sync');
        context.io.stdout.write(
          stringify(
            rows.map((row) => ({
              ...row,
              sentAt: row.sentAt?.toISOString() ?? '',
              nextAttemptAt: row.nextAttemptAt?.toISOString() ?? '',
              updatedAt: row.updatedAt.toISOString(),
            })),
            {
              header: true,
              columns: [
                'id',
                'email',
                'state',
                'attempts',
                'inDoubt',
                'messageId',
                'relay',
                'lastReply',
                'bounceReport',
                'sentAt',
                'nextAttemptAt',
                'updatedAt',
              ],
              record_delimiter: 'unix',
            },
          ),
        );
        return;
      }
      if (rows.length === 0) return printLines(context.io, 'No deliveries match.');
      // A delivery failed by a bounce shows the relay's reply (its queue id) and the bounce beside it.
      const bounced = rows.some((row) => row.bounceReport !== null);
      printLines(
        context.io,
        formatTable(
          ['ID', 'EMAIL', 'STATE', 'ATTEMPTS', 'IN DOUBT', 'LAST REPLY', ...(bounced ? ['BOUNCE'] : [])],
          rows.map((row) => [
            row.id,
            row.email ?? '(erased)',
            row.state,
            row.attempts,
            row.inDoubt ? 'yes' : '',
            (row.lastReply ?? '').slice(0, 80),
            ...(bounced ? [(row.bounceReport ?? '').slice(0, 80)] : []),
          ]),
        ),
      );
    });
}

/** `deliveries --state in-doubt`: not a state, the mark a delivery keeps once it was uncertain. */
const IN_DOUBT = 'in-doubt';

type Shown = (BulletinStatus & { readonly at: string }) | LiveStatus;

function readStatus(app: App, bulletinId: number | undefined): Promise<Shown> {
  return bulletinId === undefined ? liveStatus(app) : bulletinStatus(app, bulletinId);
}

/** The database did not answer the last read: a connection error, or no answer within a beat. */
interface Unreachable {
  readonly since: Date;
  readonly error: string;
}

/**
 * `status --watch`: reads and shows the status once a second until a signal or, with an id, until
 * that send is done. A read the database does not answer within a beat is waited for while the
 * beats go on saying so; a connection error is said and the next beat tries again.
 */
async function watchStatus(context: CliContext, bulletinId: number | undefined, json: boolean): Promise<void> {
  const terminal = context.io.stdout.isTTY === true && !json;
  // Opening the database waits for it (saying so); Ctrl-C meanwhile quits as usual.
  const outage = new DatabaseOutage({
    onWait: (waiting) => context.io.stderr.write(`bulletin: ${waiting.note('waiting for it before watching')}\n`),
  });
  await context.run(
    async (app) => {
      const show = (shown: Shown | null, unreachable: Unreachable | null) => {
        const now = app.clock.now();
        if (!terminal) {
          const line = unreachable
            ? { at: now.toISOString(), databaseUnreachable: { since: unreachable.since.toISOString(), error: unreachable.error } }
            : shown;
          context.io.stdout.write(`${JSON.stringify(line)}\n`);
          return;
        }
        const lines = [`bulletin status${bulletinId === undefined ? '' : ` ${bulletinId}`} at ${formatDate(now)} (Ctrl-C to stop)`, ''];
        if (unreachable) {
          lines.push(`database unreachable since ${formatDate(unreachable.since)} (${unreachable.error.slice(0, 80)}); still watching`);
          if (shown) lines.push(`as it was at ${formatDate(new Date(shown.at))}:`, '');
        }
        if (shown) lines.push(...statusLines(shown));
        context.io.stdout.write(`${CLEAR_SCREEN}${lines.join('\n')}\n`);
      };
      const signals = untilSignal();
      const stopped = signals.signalled.then(() => ({ kind: 'stop' as const }));
      let timer: NodeJS.Timeout | undefined;
      const beat = (ms: number) =>
        new Promise<{ kind: 'beat' }>((resolve) => {
          timer = setTimeout(() => resolve({ kind: 'beat' }), ms);
        });
      let last: Shown | null = null;
      let pending: Promise<{ kind: 'read'; shown: Shown } | { kind: 'failed'; error: unknown }> | null = null;
      let waitingSince: Date | null = null;
      try {
        for (;;) {
          const beganAt = Date.now();
          pending ??= readStatus(app, bulletinId).then(
            (shown) => ({ kind: 'read' as const, shown }),
            (error: unknown) => ({ kind: 'failed' as const, error }),
          );
          waitingSince ??= app.clock.now();
          const first = await Promise.race([pending, beat(WATCH_BEAT_MS), stopped]);
          clearTimeout(timer);
          if (first.kind === 'stop') return;
          if (first.kind === 'beat') {
            // No answer within a beat: say so, and keep waiting for this read on the next beat.
            show(last, { since: outage.downSince ?? waitingSince, error: outage.downSince ? outage.lastError : 'the database does not answer' });
            continue;
          }
          pending = null;
          waitingSince = null;
          if (first.kind === 'read') {
            outage.recovered();
            const shown = first.shown;
            last = shown;
            show(shown, null);
            if ('bulletinId' in shown && shown.done) return;
          } else {
            if (!outage.notice(first.error)) throw first.error;
            show(last, { since: outage.downSince ?? app.clock.now(), error: outage.lastError });
          }
          const rest = await Promise.race([beat(Math.max(0, WATCH_BEAT_MS - (Date.now() - beganAt))), stopped]);
          clearTimeout(timer);
          if (rest.kind === 'stop') return;
        }
      } finally {
        clearTimeout(timer);
        signals.release();
      }
    },
    { outage },
  );
}

/** What `status` prints for people: one bulletin, or every unfinished send then the scheduled ones. */
function statusLines(shown: Shown): string[] {
  if ('bulletinId' in shown) return bulletinLines(shown);
  const lines: string[] = [];
  const blocks = shown.sends.length > 0 ? shown.sends : shown.latest ? [shown.latest] : [];
  for (const [index, status] of blocks.entries()) lines.push(...(index > 0 ? [''] : []), ...bulletinLines(status));
  if (blocks.length === 0) lines.push(shown.scheduled.length > 0 ? 'No send is unfinished.' : 'No bulletin has been sent yet.');
  if (shown.scheduled.length > 0) {
    lines.push('Scheduled sends:');
    for (const each of shown.scheduled) {
      lines.push(
        `  ${String(each.bulletinId).padStart(4)}  ${formatDate(new Date(each.scheduledFor))}  "${each.list}": ${each.subject}  (${describeAudience(each.audience)})`,
      );
    }
  }
  return lines;
}

function bulletinLines(status: BulletinStatus): string[] {
  const { control } = status;
  const live = status.state === 'started' && status.finishedAt === null;
  const lines = [`Bulletin ${status.bulletinId} to "${status.list}": ${status.subject}`, `  ${stateLine(status)}`];
  if (live && control.rate) {
    lines.push(
      `  pace: ${formatRate(control.rate.perSecond)} set by ${control.rate.by ?? 'someone'}${control.rate.at ? ` at ${formatDate(new Date(control.rate.at))}` : ''} (bulletin pace ${status.bulletinId} <rate> changes it)`,
    );
  } else if (live && status.pace !== null) {
    lines.push(`  pace: ${formatRate(status.pace)}, each process's own --rate (bulletin pace ${status.bulletinId} <rate> sets one for all)`);
  }
  lines.push(
    `  audience:   ${describeAudience(status.audience)}`,
    `  ${DELIVERY_STATES.map((state) => `${status.counts[state].toLocaleString('en-US')} ${state}`).join(', ')} (of ${status.total.toLocaleString('en-US')})`,
    `  rate over the last minute: ${status.rate.toFixed(1)}/s${etaText(status)}`,
  );
  if (status.nextAttemptAt) lines.push(`  next retry due ${formatDate(new Date(status.nextAttemptAt))}`);
  if (status.complaints > 0) lines.push(`  complaints (feedback loops): ${status.complaints.toLocaleString('en-US')}, each complainer unsubscribed`);
  if (status.commonReplies.length > 0) {
    lines.push('  commonest replies:');
    for (const reply of status.commonReplies) lines.push(`    ${String(reply.count).padStart(6)}  ${reply.state.padEnd(9)} ${reply.reply}`);
  }
  if (status.processes.length > 0) {
    lines.push('  processes:', ...processLines(status.processes).map((line) => `    ${line}`));
  } else if (live) {
    lines.push(`  processes: none (nothing is sending it; bulletin resume ${status.bulletinId} or a bulletin worker carries it on)`);
  }
  return lines;
}

function stateLine(status: BulletinStatus): string {
  const { control } = status;
  if (status.state === 'scheduled') return `scheduled for ${formatDate(new Date(status.scheduledFor ?? status.createdAt))}, not started`;
  if (status.state === 'unscheduled') return `unscheduled (was due ${formatDate(new Date(status.scheduledFor ?? status.createdAt))}); never sent`;
  if (status.state === 'cancelled') {
    const when = control.cancelled ? ` ${formatDate(new Date(control.cancelled.at))} by ${control.cancelled.by ?? 'someone'}` : '';
    const inFlight = status.counts.sending > 0 ? `; ${status.counts.sending.toLocaleString('en-US')} in flight still finishing` : '';
    return `cancelled${when}: ${status.counts.cancelled.toLocaleString('en-US')} not sent${inFlight} (bulletin retry ${status.bulletinId} --state cancelled sends them)`;
  }
  if (status.finishedAt) return `finished ${formatDate(new Date(status.finishedAt))}`;
  const paused = control.paused
    ? ` — paused since ${formatDate(new Date(control.paused.since))} by ${control.paused.by ?? 'someone'} (bulletin unpause ${status.bulletinId})`
    : '';
  return `started ${formatDate(new Date(status.createdAt))}, not finished${paused}`;
}

function etaText(status: BulletinStatus): string {
  if (status.open === 0) return '';
  if (status.control.paused) return ', no ETA while paused';
  if (status.etaSeconds === null) return '';
  return `, ETA ${formatSeconds(status.etaSeconds)}${status.etaBasis === 'pace' ? ' (at the pace)' : ''}`;
}

/** One aligned line per process, its pace note (why it is slower) on the line below. */
function processLines(processes: readonly SendProcessStatus[]): string[] {
  const rows = processes.map((each) => [
    each.host,
    `pid ${each.pid}`,
    each.command,
    `since ${formatDate(new Date(each.startedAt))}`,
    each.silent ? `silent ${Math.round(each.secondsSinceHeartbeat)} s (stopped or cut off?)` : `heartbeat ${each.secondsSinceHeartbeat.toFixed(1)} s ago`,
    each.pace === null ? '' : `pace ${formatRate(each.pace)}`,
    `sent ${each.sent.toLocaleString('en-US')}`,
    each.paused ? 'paused' : '',
  ]);
  const widths = rows[0]?.map((_, column) => Math.max(...rows.map((row) => (row[column] ?? '').length))) ?? [];
  return rows.flatMap((row, index) => {
    const line = row
      .map((cell, column) => cell.padEnd(widths[column] ?? 0))
      .join('  ')
      .trimEnd();
    const note = processes[index]?.paceNote;
    return note ? [line, `  ${note}`] : [line];
  });
}

function formatSeconds(seconds: number): string {
  if (seconds < 120) return `${seconds}s`;
  if (seconds < 7200) return `${Math.round(seconds / 60)}m`;
  return `${(seconds / 3600).toFixed(1)}h`;
}
