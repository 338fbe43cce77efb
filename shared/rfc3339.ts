/**
 * Strict RFC 3339 timestamps: a real calendar date, a time of day below 24:00, and an explicit
 * offset (`Z` or `±hh:mm`). `Date.parse` accepts far more (no offset means local time, February
 * 30th rolls over to March), which is how a mistyped argument turns into a different instant.
 */
const PATTERN = /^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(\.\d{1,9})?([Zz]|([+-])(\d{2}):(\d{2}))$/;

/** The instant, or a sentence saying what is wrong with the text. */
export function parseRfc3339(text: string): Date | { problem: string } {
  const match = PATTERN.exec(text.trim());
  if (!match) {
    return /^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?$/.test(text.trim())
      ? { problem: 'it has no offset: add Z for UTC or ±hh:mm, e.g. 2026-01-15T10:00:00Z' }
      : { problem: 'expected an RFC 3339 timestamp with an offset, e.g. 2026-01-15T10:00:00Z' };
  }
  const [, y, mo, d, h, mi, s, , zone, , oh, om] = match.map((part) => part ?? '');
  const year = Number(y);
  const month = Number(mo);
  const day = Number(d);
  const daysInMonth = new Date(Date.UTC(year, month, 0)).getUTCDate();
  if (month < 1 || month > 12) return { problem: `month ${mo} does not exist` };
  if (day < 1 || day > daysInMonth) return { problem: `${y}-${mo} has no day ${d}` };
  if (Number(h) > 23 || Number(mi) > 59 || Number(s) > 59) return { problem: `${h}:${mi}:${s} is not a time of day (00:00:00 to 23:59:59)` };
  if (zone.toUpperCase() !== 'Z' && (Number(oh) > 23 || Number(om) > 59)) return { problem: `offset ${zone} is not an offset` };
  return new Date(text.trim());
}

/** The instant, or throws with the problem. */
export function rfc3339OrThrow(text: string): Date {
  const parsed = parseRfc3339(text);
  if (parsed instanceof Date) return parsed;
  throw new Error(`${text}: ${parsed.problem}`);
}
