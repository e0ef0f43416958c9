/**
 * The CLI's one time format for people: local time with its zone ("2030-01-01 14:05 CET"), in the
 * zone of the machine shoal runs on (TZ). --json output keeps the API's ISO 8601 UTC strings.
 */
function parts(iso: string): Record<string, string> {
  const format = new Intl.DateTimeFormat('en-CA', {
    year: 'numeric',
    month: '2-digit',
    day: '2-digit',
    hour: '2-digit',
    minute: '2-digit',
    second: '2-digit',
    hourCycle: 'h23',
  });
  const date = new Date(iso);
  return { ...Object.fromEntries(format.formatToParts(date).map((part) => [part.type, part.value])), timeZoneName: zoneName(date) };
}

/** "CEST", "EDT", "UTC": ICU knows some abbreviations only in en-GB and others only in en-US; else "GMT+5:30". */
function zoneName(date: Date): string {
  const name = (locale: string) =>
    new Intl.DateTimeFormat(locale, { timeZoneName: 'short' }).formatToParts(date).find((part) => part.type === 'timeZoneName')?.value ?? '';
  const british = name('en-GB');
  if (!british.startsWith('GMT')) return british;
  const american = name('en-US');
  return american.startsWith('GMT') ? british : american;
}

/** "2030-01-01T13:05:09Z" → "2030-01-01 14:05 CET" (with seconds: "2030-01-01 14:05:09 CET"). */
export function localTime(iso: string, options: { seconds?: boolean } = {}): string {
  const p = parts(iso);
  return `${p.year}-${p.month}-${p.day} ${p.hour}:${p.minute}${options.seconds ? `:${p.second}` : ''} ${p.timeZoneName}`;
}

/** Only the clock, for lines of a live view: "14:05:09". */
export function localClock(iso: string): string {
  const p = parts(iso);
  return `${p.hour}:${p.minute}:${p.second}`;
}
