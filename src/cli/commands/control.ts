// `bulletin pause|unpause|pace|cancel <id>`: the operator's hands on a live send, from any terminal
// on any machine sharing the database; each is a typed call of a use case in src/app/send/control.ts.
// `cancel` asks first (a terminal prompt showing what is still to go, or --yes).
import { createInterface } from 'node:readline/promises';
import type { Command } from 'commander';
import { cancelSend, paceSend, pauseSend, planCancel, unpauseSend } from '../../app/send/control.js';
import { BulletinError } from '../../domain/errors.js';
import { formatRate } from '../../send/adaptive.js';
import { parseId } from '../arguments.js';
import type { CliContext } from '../context.js';
import { formatDate, plural, printJson, printLines } from '../output.js';

const WHO_HEARS = 'every process working on it (send, resume, retry, worker, on any machine) hears it within a second';

function processes(count: number): string {
  return count === 0 ? 'no process is working on it now' : `${plural(count, 'process is', 'processes are')} working on it now`;
}

export function registerControlCommands(program: Command, context: CliContext): void {
  program
    .command('pause <bulletin-id>')
    .description('pause a send everywhere: its processes stop claiming within a second and stay up; messages on the wire finish')
    .option('--json', 'print the result as JSON')
    .addHelpText(
      'after',
      `
The running send, resume, retry and worker processes show "paused since … by user@host" and
wait; what they had claimed and not yet started goes back to the queue. \`bulletin unpause <id>\`
lets them carry on at once. A worker with another unfinished send that is not paused leaves this
one for it, and comes back on its next round. A scheduled send can be paused before it starts.

Example:
  bulletin pause 7`,
    )
    .action(async (id: string, flags: { json?: boolean }) => {
      const result = await context.run((app) => pauseSend(app, parseId(id)));
      if (flags.json) return printJson(context.io, result);
      printLines(
        context.io,
        result.already
          ? `Bulletin ${result.bulletinId} was already paused, since ${formatDate(new Date(result.pausedAt))} by ${result.pausedBy}; ${processes(result.processes)}.`
          : `Paused bulletin ${result.bulletinId}: ${WHO_HEARS} and stops claiming; ${processes(result.processes)}. Carry on with: bulletin unpause ${result.bulletinId}`,
      );
    });

  program
    .command('unpause <bulletin-id>')
    .description('let a paused send carry on at once, in every process working on it')
    .option('--json', 'print the result as JSON')
    .addHelpText('after', '\nExample:\n  bulletin unpause 7')
    .action(async (id: string, flags: { json?: boolean }) => {
      const result = await context.run((app) => unpauseSend(app, parseId(id)));
      if (flags.json) return printJson(context.io, result);
      printLines(
        context.io,
        result.was === null
          ? `Bulletin ${result.bulletinId} was not paused; nothing changed.`
          : `Unpaused bulletin ${result.bulletinId} (paused since ${formatDate(new Date(result.was.pausedAt))} by ${result.was.pausedBy}): ${processes(result.processes)}, and carry on within a second.`,
      );
    });

  program
    .command('pace <bulletin-id> <rate>')
    .description('change the rate of a send for all its processes within a second (50/s, 3000/m, 100000/h); later resumes keep it')
    .option('--json', 'print the result as JSON')
    .addHelpText(
      'after',
      `
The rate is kept in the database with the send, so it holds for every process on it, on every
machine, and for any later \`resume\` or \`worker\`, whatever their --rate. The adaptive pace still
slows down below it when the relay pushes back. Each process's progress line shows the new pace
and who set it.

Examples:
  bulletin pace 7 20/s
  bulletin pace 7 600/m`,
    )
    .action(async (id: string, rate: string, flags: { json?: boolean }) => {
      const result = await context.run((app) => paceSend(app, parseId(id), rate));
      if (flags.json) return printJson(context.io, result);
      printLines(
        context.io,
        `Bulletin ${result.bulletinId} now goes at most ${formatRate(result.perSecond)} (set by ${result.by}): ${WHO_HEARS}; ${processes(result.processes)}.`,
      );
    });

  program
    .command('cancel <bulletin-id>')
    .description('stop a send for good: every delivery not yet sent becomes cancelled, and its processes stop within a second')
    .option('-y, --yes', 'do not ask for confirmation (needed when not on a terminal)')
    .option('--json', 'print the result as JSON')
    .addHelpText(
      'after',
      `
Nothing already sent changes. Messages on the wire finish and are recorded; everything else
(queued, deferred, uncertain, claimed but not started) becomes \`cancelled\`, which \`status\` and
\`deliveries <id> --state cancelled\` show. \`bulletin retry <id> --state cancelled\` can still send to
them later. The send, resume and retry processes on it exit 0; workers go on to other sends.
A scheduled send that has not started is unscheduled instead.

Examples:
  bulletin cancel 7
  bulletin cancel 7 --yes`,
    )
    .action(async (id: string, flags: { yes?: boolean; json?: boolean }) => {
      const bulletinId = parseId(id);
      const result = await context.run(async (app) => {
        const plan = await planCancel(app, bulletinId);
        if (!flags.yes) {
          if (!context.io.stdin.isTTY)
            throw new BulletinError('USAGE', 'Refusing to cancel without confirmation: standard input is not a terminal; add --yes.');
          const what =
            plan.bulletin.state === 'scheduled'
              ? `Unschedule bulletin ${bulletinId} ("${plan.bulletin.subject}"), due ${formatDate(plan.bulletin.scheduledFor ?? plan.bulletin.createdAt)}? [y/N] `
              : `Cancel bulletin ${bulletinId} ("${plan.bulletin.subject}")? ${plan.toGo.toLocaleString('en-US')} of its deliveries are still to go and will be cancelled; ${plan.sent.toLocaleString('en-US')} sent stay sent; ${processes(plan.processes)}. [y/N] `;
          const prompt = createInterface({ input: context.io.stdin, output: context.io.stderr });
          const answer = await prompt.question(what);
          prompt.close();
          if (!/^y(es)?$/i.test(answer.trim())) throw new BulletinError('USAGE', 'Not cancelled: not confirmed.');
        }
        return cancelSend(app, bulletinId);
      });
      if (flags.json) return printJson(context.io, result);
      printLines(
        context.io,
        result.unscheduled
          ? `Unscheduled bulletin ${result.bulletinId}: it had not started, and never will.`
          : `Cancelled bulletin ${result.bulletinId} (by ${result.by}): ${plural(result.cancelled, 'delivery', 'deliveries')} cancelled, ${result.sent.toLocaleString('en-US')} sent stay sent; ${WHO_HEARS} and stops. To send to the cancelled ones after all: bulletin retry ${result.bulletinId} --state cancelled`,
      );
    });
}
