// A bulletin's place in its life: scheduled for a time, started (enqueued and sending, then
// finished), unscheduled before it started, or cancelled while it was sending (nothing more of it
// goes). Defined once here; migration 0015 mirrors BULLETIN_STATES as the Postgres enum
// bulletin_state, and 0017 added 'cancelled'.

export const BULLETIN_STATES = ['scheduled', 'started', 'unscheduled', 'cancelled'] as const;
export type BulletinState = (typeof BULLETIN_STATES)[number];

/** `send --at` needs an ISO 8601 date and time with an offset: a time without one is refused. */
const SCHEDULE_TIME = /^(\d{4}-\d{2}-\d{2})T(\d{2}:\d{2}(?::\d{2}(?:\.\d{1,3})?)?)(Z|[+-]\d{2}:\d{2})$/i;

/** The moment `--at` names, or a sentence saying what is wrong with it. */
export function parseScheduleTime(text: string): { ok: true; at: Date } | { ok: false; reason: string } {
  const trimmed = text.trim();
  const match = SCHEDULE_TIME.exec(trimmed);
  if (!match) {
    if (/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?$/i.test(trimmed)) {
      return {
        ok: false,
        reason: `--at "${trimmed}" has no offset from UTC; add one (like ${trimmed}+10:30 or ${trimmed}Z) so it cannot go at the wrong hour`,
      };
    }
    return { ok: false, reason: `--at "${trimmed.slice(0, 60)}" is not an ISO 8601 date and time with an offset, like 2026-12-02T09:00+10:30` };
  }
  const at = new Date(`${match[1]}T${match[2]}${match[3]!.toUpperCase()}`);
  const [year, month, day] = match[1]!.split('-').map(Number) as [number, number, number];
  const [hours, minutes] = match[2]!.split(':').map(Number) as [number, number];
  if (Number.isNaN(at.getTime()) || month < 1 || month > 12 || day < 1 || day > new Date(Date.UTC(year, month, 0)).getUTCDate() || hours > 23 || minutes > 59) {
    return { ok: false, reason: `--at "${trimmed}" is not a real date and time` };
  }
  return { ok: true, at };
}
