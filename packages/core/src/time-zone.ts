/**
 * Zoned calendar arithmetic on top of the built-in `Intl` API only, so it runs on any JS runtime
 * (Node, Deno, Bun, browsers, edge workers) without a time-zone library.
 *
 * Instants are epoch milliseconds. "Local" values are wall-clock readings in a zone.
 *
 * @packageDocumentation
 */

const SECOND_MS = 1_000;
const DAY_MS = 86_400_000;
/** Days in 400 Gregorian years: shifting a year by 400 keeps every date on the same weekday. */
const DAYS_PER_400_YEARS = 146_097;

/** Wall-clock reading of an instant in a time zone. */
export interface ZonedFields {
  /** Full year, e.g. 2026. */
  readonly year: number;
  /** Month of the year, 1 (January) to 12. */
  readonly month: number;
  /** Day of the month, 1 to 31. */
  readonly day: number;
  /** Hour of the day, 0 to 23. */
  readonly hour: number;
  /** Minute, 0 to 59. */
  readonly minute: number;
  /** Second, 0 to 59. */
  readonly second: number;
  /** Millisecond, 0 to 999. */
  readonly millisecond: number;
  /** ISO day of the week: 1 (Monday) to 7 (Sunday). */
  readonly weekday: number;
}

/** A local (wall-clock) date-time, without a zone. */
export interface LocalDateTime {
  /** Full year, e.g. 2026. */
  readonly year: number;
  /** Month, 1 to 12. Out-of-range values roll over like `Date.UTC` (13 is January next year). */
  readonly month: number;
  /**
   * Day of the month. Out-of-range values roll over like `Date.UTC` (0 is the previous month's
   * last day).
   */
  readonly day: number;
  /** Hour, 0 to 23. Defaults to 0. */
  readonly hour?: number;
  /** Minute, 0 to 59. Defaults to 0. */
  readonly minute?: number;
  /** Second, 0 to 59. Defaults to 0. */
  readonly second?: number;
}

interface IntlZone {
  readonly formatter: Intl.DateTimeFormat;
  /** Whether `format()` output was checked against `formatToParts()` and can be parsed directly. */
  readonly parseFormatted: boolean;
}

/** Per-zone state; `formatter` is `null` for UTC, which never touches `Intl` after validation. */
type Zone = IntlZone | { readonly formatter: null };

const UTC_ZONE: Zone = { formatter: null };

/** 2001-12-22T03:10:10Z: in every zone its month (12) and day (21-23) tell field order apart. */
const PROBE_INSTANT = 1_008_990_610_000;

/** Spellings of UTC recognised without building a formatter (compared upper-cased). */
const UTC_NAMES = new Set([
  'UTC',
  'ETC/UTC',
  'GMT',
  'ETC/GMT',
  'UCT',
  'ETC/UCT',
  'ZULU',
  'ETC/ZULU',
]);

/**
 * Zones by the name the caller used. Building an `Intl.DateTimeFormat` costs tens of microseconds,
 * far more than formatting with one, so each name gets exactly one.
 */
const zones = new Map<string, Zone>();
/**
 * Names are matched case-insensitively by `Intl`, so a caller feeding arbitrary spellings of valid
 * zones could grow the cache without bound; past this size it is simply rebuilt on demand.
 */
const MAX_CACHED_ZONES = 1_024;

function lookupZone(timeZone: string): Zone {
  const cached = zones.get(timeZone);
  if (cached !== undefined) return cached;
  if (typeof timeZone !== 'string' || timeZone === '') {
    throw new RangeError(`Invalid time zone: ${String(timeZone)}`);
  }
  let zone: Zone;
  if (UTC_NAMES.has(timeZone.toUpperCase())) {
    zone = UTC_ZONE;
  } else {
    let formatter: Intl.DateTimeFormat;
    try {
      // Gregorian calendar and Latin digits are pinned so parsing never depends on the host locale.
      formatter = new Intl.DateTimeFormat('en-US-u-ca-gregory-nu-latn', {
        timeZone,
        hourCycle: 'h23',
        year: 'numeric',
        month: 'numeric',
        day: 'numeric',
        hour: 'numeric',
        minute: 'numeric',
        second: 'numeric',
      });
    } catch {
      throw new RangeError(`Invalid time zone: ${timeZone}`);
    }
    // Aliases such as 'Etc/GMT0' or 'Universal' resolve to UTC and deserve the fast path too.
    if (formatter.resolvedOptions().timeZone === 'UTC') {
      zone = UTC_ZONE;
    } else {
      // Trust the faster string parsing only if this engine's output agrees with formatToParts.
      const parseFormatted =
        parseEnUs(formatter.format(PROBE_INSTANT)) === partsAsUtc(formatter, PROBE_INSTANT);
      zone = { formatter, parseFormatted };
    }
  }
  if (zones.size >= MAX_CACHED_ZONES) zones.clear();
  zones.set(timeZone, zone);
  return zone;
}

/**
 * Whether `timeZone` is a time zone name this runtime's `Intl` data knows, e.g. `'Europe/Moscow'`
 * or `'UTC'`. Names are matched case-insensitively, as `Intl` does.
 */
export function isValidTimeZone(timeZone: string): boolean {
  try {
    lookupZone(timeZone);
    return true;
  } catch {
    return false;
  }
}

/**
 * Throws a `RangeError` unless {@link isValidTimeZone} accepts `timeZone`.
 *
 * @throws RangeError for an unknown or empty time zone name.
 */
export function assertValidTimeZone(timeZone: string): void {
  lookupZone(timeZone);
}

/** Whether `timeZone` is a valid name for UTC (e.g. `'UTC'`, `'Etc/UTC'`, `'GMT'`). */
export function isUtcTimeZone(timeZone: string): boolean {
  try {
    return lookupZone(timeZone) === UTC_ZONE;
  } catch {
    return false;
  }
}

/** `a mod b` with a non-negative result, so instants before 1970 floor the right way. */
function floorMod(a: number, b: number): number {
  return ((a % b) + b) % b;
}

/**
 * `Date.UTC` for a local wall-clock reading. `Date.UTC` maps years 0-99 to 1900-1999; shifting such
 * years by 400 (a whole Gregorian cycle) and back sidesteps that without changing the result.
 */
function utcMs(year: number, month: number, day: number, h = 0, m = 0, s = 0, ms = 0): number {
  if (year >= 0 && year < 100) {
    return Date.UTC(year + 400, month - 1, day, h, m, s, ms) - DAYS_PER_400_YEARS * DAY_MS;
  }
  return Date.UTC(year, month - 1, day, h, m, s, ms);
}

/** Local wall clock to the second, as if it were UTC, read through `formatToParts`. */
function partsAsUtc(formatter: Intl.DateTimeFormat, at: number): number {
  let year = 0;
  let month = 1;
  let day = 1;
  let hour = 0;
  let minute = 0;
  let second = 0;
  for (const part of formatter.formatToParts(at)) {
    switch (part.type) {
      case 'year':
        year = Number(part.value);
        break;
      case 'month':
        month = Number(part.value);
        break;
      case 'day':
        day = Number(part.value);
        break;
      case 'hour':
        // Some engines have printed midnight as 24 despite h23; the date part is still correct.
        hour = Number(part.value) % 24;
        break;
      case 'minute':
        minute = Number(part.value);
        break;
      case 'second':
        second = Number(part.value);
        break;
      default:
        break;
    }
  }
  return utcMs(year, month, day, hour, minute, second);
}

/** The en-US rendering of the formatter's fields, e.g. `3/29/2026, 02:30:00`. */
const EN_US_PATTERN = /^(\d+)\/(\d+)\/(\d+), (\d+):(\d+):(\d+)$/;

/**
 * Local wall clock to the second, as if it were UTC (milliseconds are dropped). `format` plus a
 * regular expression is about three times faster than `formatToParts`, which allocates an object
 * per field; anything that does not look exactly as expected takes the `formatToParts` road.
 */
function localSecondsAsUtc(zone: IntlZone, at: number): number {
  if (zone.parseFormatted) {
    const local = parseEnUs(zone.formatter.format(at));
    if (local !== undefined) return local;
  }
  return partsAsUtc(zone.formatter, at);
}

function parseEnUs(text: string): number | undefined {
  const match = EN_US_PATTERN.exec(text);
  if (match === null) return undefined;
  const [, month, day, year, hour, minute, second] = match;
  return utcMs(
    Number(year),
    Number(month),
    Number(day),
    Number(hour) % 24,
    Number(minute),
    Number(second),
  );
}

/** Gregorian years before 1 CE print without an era in en-US and would be misread. */
const MIN_ZONED_INSTANT = utcMs(1, 1, 2);

function offsetIn(zone: Zone, at: number): number {
  if (zone.formatter === null) return 0;
  if (at < MIN_ZONED_INSTANT) throw new RangeError(`Instant before year 1 is not supported: ${at}`);
  // The formatter only has second precision, so compare against the instant floored to a second.
  return localSecondsAsUtc(zone, at) - (at - floorMod(at, SECOND_MS));
}

function assertInstant(at: number, name: string): void {
  if (!Number.isFinite(at)) throw new RangeError(`${name} must be a finite number, got ${at}`);
}

/**
 * The UTC offset of `timeZone` at the instant `at`, in milliseconds (positive east of Greenwich,
 * e.g. `10_800_000` for Europe/Moscow).
 *
 * @throws RangeError for an invalid time zone or a non-finite instant.
 */
export function getTimeZoneOffset(at: number, timeZone: string): number {
  assertInstant(at, 'at');
  return offsetIn(lookupZone(timeZone), at);
}

/**
 * The wall-clock reading of the instant `at` (epoch ms) in `timeZone`.
 *
 * @throws RangeError for an invalid time zone or a non-finite instant.
 */
export function getZonedFields(at: number, timeZone: string): ZonedFields {
  assertInstant(at, 'at');
  const local = at + offsetIn(lookupZone(timeZone), at);
  const date = new Date(local);
  return {
    year: date.getUTCFullYear(),
    month: date.getUTCMonth() + 1,
    day: date.getUTCDate(),
    hour: date.getUTCHours(),
    minute: date.getUTCMinutes(),
    second: date.getUTCSeconds(),
    millisecond: date.getUTCMilliseconds(),
    weekday: date.getUTCDay() === 0 ? 7 : date.getUTCDay(),
  };
}

/**
 * First instant in `(lo, hi]` whose offset differs from the offset at `lo`, given that they
 * differ at `hi`. Bisection is exact because tz transitions fall on whole seconds and there is
 * at most one inside the short spans this is used on.
 */
function bisectOffsetChange(zone: Zone, lo: number, hi: number, offsetLo: number): number {
  let low = lo;
  let high = hi;
  while (high - low > 1) {
    const mid = Math.floor(low + (high - low) / 2);
    if (offsetIn(zone, mid) === offsetLo) low = mid;
    else high = mid;
  }
  return high;
}

/**
 * If the UTC offset of `timeZone` differs between the instants `from` and `to` (`from < to`),
 * returns the first instant in `(from, to]` at which it differs from the offset at `from`;
 * otherwise `undefined`. Meant for spans of at most a day or so: it assumes a single offset
 * change within the span, which holds for real tz data, and cannot see two changes that cancel.
 *
 * @throws RangeError for an invalid time zone or non-finite instants.
 */
export function findOffsetChange(from: number, to: number, timeZone: string): number | undefined {
  assertInstant(from, 'from');
  assertInstant(to, 'to');
  const zone = lookupZone(timeZone);
  if (zone.formatter === null || to <= from) return undefined;
  const offsetFrom = offsetIn(zone, from);
  if (offsetIn(zone, to) === offsetFrom) return undefined;
  return bisectOffsetChange(zone, from, to, offsetFrom);
}

function localToEpoch(zone: Zone, local: number): number {
  if (zone.formatter === null) return local;
  // Offsets a day either side bracket any transition near `local`; each is a candidate reading.
  const offsetBefore = offsetIn(zone, local - DAY_MS);
  const offsetAfter = offsetIn(zone, local + DAY_MS);
  // No change within a day either side (the usual case): the reading is unambiguous.
  if (offsetBefore === offsetAfter) return local - offsetBefore;
  let earliest = Number.POSITIVE_INFINITY;
  for (const offset of [offsetBefore, offsetAfter]) {
    const candidate = local - offset;
    // Both candidates are valid in an overlap; the earlier is the first time the clock reads it.
    if (candidate < earliest && offsetIn(zone, candidate) === offset) earliest = candidate;
  }
  if (earliest !== Number.POSITIVE_INFINITY) return earliest;
  // A gap: the clock jumps over `local`, from before it at `offsetBefore` to after it at
  // `offsetAfter`. The jump itself is the first instant whose reading is at or after `local`.
  const lo = local - Math.max(offsetBefore, offsetAfter);
  const hi = local - Math.min(offsetBefore, offsetAfter);
  const offsetLo = offsetIn(zone, lo);
  return offsetIn(zone, hi) === offsetLo ? hi : bisectOffsetChange(zone, lo, hi, offsetLo);
}

/**
 * The instant (epoch ms) at which the wall clock in `timeZone` reads `local`, DST-correct.
 *
 * - If the reading occurs twice (a fall-back overlap), the earlier instant is returned.
 * - If it never occurs (a spring-forward gap), the first instant after the gap is returned, i.e.
 *   the transition itself: the first instant whose reading is at or after `local`. For zones that
 *   switch at midnight (America/Santiago, America/Havana) that makes `00:00` of the switch day
 *   resolve to the instant the day actually starts, at 01:00.
 *
 * UTC takes a pure `Date.UTC` path that never consults `Intl`.
 *
 * @throws RangeError for an invalid time zone or non-finite fields.
 */
export function zonedDateTimeToEpoch(local: LocalDateTime, timeZone: string): number {
  const zone = lookupZone(timeZone);
  const ms = utcMs(
    local.year,
    local.month,
    local.day,
    local.hour ?? 0,
    local.minute ?? 0,
    local.second ?? 0,
  );
  assertInstant(ms, 'local date-time');
  return localToEpoch(zone, ms);
}

/**
 * The first instant (epoch ms) of the local calendar day `year-month-day` in `timeZone`: local
 * midnight, or the end of the gap when midnight is skipped by a DST change, or the earlier of two
 * midnights in an overlap. `month` and `day` roll over like `Date.UTC`, so `day + 1` past the end
 * of a month is the next month's first day.
 *
 * @throws RangeError for an invalid time zone or non-finite fields.
 */
export function startOfZonedDay(
  year: number,
  month: number,
  day: number,
  timeZone: string,
): number {
  return zonedDateTimeToEpoch({ year, month, day }, timeZone);
}
