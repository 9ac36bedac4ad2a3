// SQL for the `suppressions` table: addresses erased on request, kept only as a SHA-256 so the
// person is never mailed or imported again. The hash is computed in SQL from the normalised address.
import type { Sql } from './database.js';

export async function insertSuppression(sql: Sql, email: string, reason: string): Promise<void> {
  await sql.query(
    `INSERT INTO suppressions (email_sha256, reason) VALUES (sha256(convert_to($1, 'UTF8')), $2)
     ON CONFLICT (email_sha256) DO NOTHING`,
    [email, reason],
  );
}

export async function isSuppressed(sql: Sql, email: string): Promise<boolean> {
  const { rows } = await sql.query(`SELECT 1 FROM suppressions WHERE email_sha256 = sha256(convert_to($1, 'UTF8'))`, [email]);
  return rows.length > 0;
}

export async function deleteSuppression(sql: Sql, email: string): Promise<boolean> {
  const { rowCount } = await sql.query(`DELETE FROM suppressions WHERE email_sha256 = sha256(convert_to($1, 'UTF8'))`, [email]);
  return rowCount === 1;
}
