// The dispatcher's control port (src/send/send-control.ts) over the database: each beat renews the
// process's row in send_processes and reads the send's control row and state in one statement.
import { hostname } from 'node:os';
import type { ControlState, SendControlPort } from '../../send/send-control.js';
import type { Sql } from '../../store/database.js';
import { beatAndReadControl, leaveSend } from '../../store/send-processes.js';

/** `command`: which command runs the process (send, resume, retry, worker), for `bulletin status`. */
export function sendControlOf(db: Sql, bulletinId: number, command: string): SendControlPort {
  const host = hostname();
  return {
    async beat(owner, report): Promise<ControlState> {
      const row = await beatAndReadControl(db, { owner, bulletinId, host, pid: process.pid, command, ...report });
      return {
        paused: row.pausedAt === null ? null : { since: row.pausedAt, by: row.pausedBy ?? 'someone' },
        rate: row.rate === null ? null : { perSecond: row.rate, by: row.rateSetBy ?? 'someone', at: row.rateSetAt ?? new Date(0) },
        cancelled: row.cancelledAt === null ? null : { at: row.cancelledAt, by: row.cancelledBy ?? 'someone' },
      };
    },
    leave: (owner) => leaveSend(db, owner, bulletinId),
  };
}
