// How a send looks on the terminal: the progress bar (or JSON progress lines, or nothing), Ctrl-C
// handling while it runs, the summary at the end, and the one sentence (and exit status) of a send
// that stopped by itself. Presentation only: what a send does lives in src/app/send/.
import cliProgress from 'cli-progress';
import type { InDoubt, RunOptions, SendSummary } from '../app/send/run.js';
import { quitNow } from '../app/send/quit-now.js';
import { DELIVERY_STATES } from '../domain/delivery.js';
import { BulletinError } from '../domain/errors.js';
import { formatRate } from '../send/adaptive.js';
import { DatabaseOutage } from '../send/database-outage.js';
import { MESSAGE_REFUSALS_TO_HOLD, type Dispatcher } from '../send/dispatcher.js';
import type { SendEvents } from '../send/send-events.js';
import type { CliContext } from './context.js';
import { formatDate, plural, printJson, printLines } from './output.js';

/** The flags that change how a send is shown. */
export interface ProgressFlags {
  readonly quiet?: boolean;
  readonly json?: boolean;
}

/** One outage per send command: the pause is said on stderr while no progress display shows it. */
export interface OutageWatch {
  readonly outage: DatabaseOutage;
  /** A progress display is showing the dispatcher's note (which includes the outage). */
  showing: boolean;
}

/** `observed`: the listener told when the database goes and comes back; `silent`: no sentence (a JSON log says it). */
export function watchOutage(context: CliContext, observed: { events?: SendEvents | undefined; silent?: boolean } = {}): OutageWatch {
  const watch: { outage?: DatabaseOutage; showing: boolean } = { showing: false };
  const silent = observed.silent === true;
  watch.outage = new DatabaseOutage({
    onWait: (outage) => {
      if (!watch.showing && !silent) context.io.stderr.write(`bulletin: ${outage.note('waiting for it before going on')}\n`);
    },
    ...(observed.events ? { events: observed.events } : {}),
  });
  return watch as OutageWatch;
}

/**
 * Runs the send with a progress bar (terminal), JSON progress lines on stderr (otherwise) or nothing
 * (--quiet), and Ctrl-C / SIGTERM handling: the first stops gracefully, a second exits at once.
 */
export async function withProgress(
  context: CliContext,
  flags: ProgressFlags,
  run: (onStart: NonNullable<RunOptions['onStart']>) => Promise<SendSummary>,
  watch?: OutageWatch,
): Promise<SendSummary> {
  let dispatcher: Dispatcher | undefined;
  let total = 0;
  const started = Date.now();
  let stopSignal: NodeJS.Signals | undefined;
  const tty = context.io.stderr.isTTY === true && !flags.json;
  const bar =
    tty && !flags.quiet
      ? new cliProgress.SingleBar(
          {
            format: '{bar} {percentage}% | {value}/{total} | sent {sent} deferred {deferred} failed {failed} | {rate}/s | ETA {eta_formatted}{note}',
            stream: context.io.stderr as NodeJS.WritableStream,
            hideCursor: true,
            etaBuffer: 200,
          },
          cliProgress.Presets.shades_classic,
        )
      : undefined;
  const done = () => (dispatcher ? dispatcher.counts.sent + dispatcher.counts.failed + dispatcher.counts.skipped : 0);
  const values = () => {
    const counts = dispatcher?.counts ?? { sent: 0, deferred: 0, failed: 0, uncertain: 0, skipped: 0 };
    const seconds = (Date.now() - started) / 1000;
    const waiting = dispatcher?.waitingUntil;
    const slower = dispatcher?.note ?? null;
    const note = [waiting ? `waiting for retries due ${formatDate(waiting)}` : null, slower, stopSignal ? 'stopping…' : null].filter((part) => part !== null);
    return {
      ...counts,
      rate: seconds > 0 ? (counts.sent / seconds).toFixed(0) : '0',
      pace: dispatcher?.currentRate == null ? null : formatRate(dispatcher.currentRate),
      note: note.length > 0 ? ` | ${note.join(' | ')}` : '',
    };
  };
  // Off a terminal a JSON line every 5 s, and at once when the operator pauses, unpauses or re-paces the send.
  let lastLine = Date.now();
  let lastControl: string | null = null;
  const timer = setInterval(() => {
    if (bar) return bar.update(done(), values());
    if (flags.quiet || !dispatcher) return;
    const control = dispatcher.operator?.note() ?? null;
    if (Date.now() - lastLine < 5000 && control === lastControl) return;
    lastLine = Date.now();
    lastControl = control;
    context.io.stderr.write(`${JSON.stringify({ progress: { total, done: done(), ...values() } })}\n`);
  }, 200);
  const onSignal = (signal: NodeJS.Signals) => {
    if (stopSignal) {
      // Second signal: quit now (see quitNow: what is in flight is re-sent on resume).
      quitNow(dispatcher, () => process.exit(signal === 'SIGINT' ? 130 : 143));
      return;
    }
    stopSignal = signal;
    dispatcher?.stop();
    const line = `Stopping: finishing the messages in flight (${signal === 'SIGINT' ? 'Ctrl-C' : signal} again to quit at once)…`;
    if (context.logLine) context.logLine('info', line);
    else context.io.stderr.write(`\n${line}\n`);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    return await run((created, bulletin, open, inDoubt) => {
      dispatcher = created;
      total = open;
      if (watch) watch.showing = !flags.quiet;
      const doubt = inDoubtLine(bulletin.id, inDoubt);
      if (doubt !== null && !flags.quiet && !flags.json) context.io.stderr.write(`${doubt}\n`);
      bar?.start(total, 0, values());
    });
  } finally {
    if (watch) watch.showing = false;
    clearInterval(timer);
    bar?.update(done(), values());
    bar?.stop();
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    if (stopSignal) context.exitCode = stopSignal === 'SIGINT' ? 130 : 143;
  }
}

/** The one sentence (and exit status) for a send that stopped by itself, or for a test copy that could not go. */
export function unusableError(outcome: { reply: string; relay: string; why: 'configuration' | 'size' }, bulletinId: number | null): BulletinError {
  const then = bulletinId === null ? '' : `; its deliveries stay queued: fix it, then run bulletin resume ${bulletinId}`;
  if (outcome.why === 'size') return new BulletinError('BAD_INPUT', `Nothing was sent: ${outcome.reply}${then}.`);
  return new BulletinError('CONFIG', `No usable relay: ${outcome.relay} refuses our configuration: ${outcome.reply}${then}.`);
}

function haltError(summary: SendSummary): BulletinError | null {
  const halt = summary.halt;
  if (halt === null) return null;
  if (halt.end === 'held') {
    return new BulletinError(
      'SEND_HELD',
      `Send held: ${halt.relay} refused the message itself ${MESSAGE_REFUSALS_TO_HOLD} times in a row (${halt.reply}); fix the message or the relay's policy, then run bulletin resume ${summary.bulletinId}.`,
    );
  }
  return unusableError({ reply: halt.reply, relay: halt.relay, why: halt.end === 'message too big' ? 'size' : 'configuration' }, summary.bulletinId);
}

export function report(context: CliContext, summary: SendSummary, flags: ProgressFlags): void {
  const halted = haltError(summary);
  if (flags.json) {
    printJson(context.io, summary);
    if (halted) throw halted;
    return;
  }
  const c = summary.counts;
  const lines = [
    `Bulletin ${summary.bulletinId} to "${summary.list}" (${summary.subject}) through ${summary.relay}:`,
    `  this run: ${summary.thisRun.sent} sent, ${summary.thisRun.deferred} deferred, ${summary.thisRun.failed} failed, ${summary.thisRun.uncertain} uncertain, ${summary.thisRun.skipped} skipped`,
    `  in all:   ${DELIVERY_STATES.map((state) => `${c[state]} ${state}`).join(', ')}`,
  ];
  const doubt = inDoubtLine(summary.bulletinId, summary.inDoubt);
  if (doubt !== null) lines.push(`  ${doubt}`);
  if (summary.halt !== null) lines.push(`  stopped by itself (${summary.halt.end}): ${summary.halt.reply}`);
  else if (summary.end === 'cancelled') {
    lines.push(
      `  cancelled by ${summary.cancelledBy ?? 'someone'}: ${c.cancelled} cancelled, nothing more is sent (bulletin retry ${summary.bulletinId} --state cancelled would send to them).`,
    );
  } else if (summary.finished) lines.push('  finished: every recipient has an outcome.');
  else if (summary.end === 'stopped') lines.push(`  stopped. Resume with: bulletin resume ${summary.bulletinId}`);
  else if (summary.end === 'left paused') lines.push(`  paused (bulletin unpause ${summary.bulletinId}): left for other sends; this worker comes back to it.`);
  else if (summary.end === 'waiting for deferred') {
    lines.push(`  ${c.deferred} deferred, next retry due ${summary.nextAttemptAt ?? '?'}. Resume later with: bulletin resume ${summary.bulletinId}`);
  } else if (summary.end === 'uncertain held') {
    lines.push(`  ${c.uncertain} uncertain held (perhaps sent). Re-send them with: bulletin resume ${summary.bulletinId} --uncertain resend`);
  }
  printLines(context.io, ...lines);
  if (halted) throw halted;
}

/**
 * What a resume must say about deliveries perhaps delivered already: how many, that they are re-sent
 * under their first Message-IDs (so a receiver may get a second copy), and how to list them.
 */
function inDoubtLine(bulletinId: number, inDoubt: InDoubt): string | null {
  if (inDoubt.uncertain === 0) return null;
  const count = plural(inDoubt.uncertain, 'delivery was', 'deliveries were');
  const why =
    inDoubt.leftInFlight === inDoubt.uncertain
      ? 'in flight when an earlier run stopped'
      : inDoubt.leftInFlight > 0
        ? `uncertain, ${inDoubt.leftInFlight.toLocaleString('en-US')} of them in flight when an earlier run stopped`
        : 'uncertain (in flight when a sender stopped, or cut off before the relay answered)';
  return inDoubt.resent
    ? `${count} ${why}: they are re-sent under their original Message-IDs, so those receivers may see a second copy (list them: bulletin deliveries ${bulletinId} --state in-doubt).`
    : `${count} ${why}: held, not re-sent (--uncertain hold); list them with bulletin deliveries ${bulletinId} --state in-doubt.`;
}
