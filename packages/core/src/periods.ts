/**
 * Quota periods and their calendar windows.
 *
 * @packageDocumentation
 */

import {
  assertValidTimeZone,
  findOffsetChange,
  getTimeZoneOffset,
  getZonedFields,
  startOfZonedDay,
} from './time-zone.js';

/** How often a quota resets. */
export const QuotaPeriod = {
  /** Applies to each request on its own; no window. */
  PER_REQUEST: 'per_request',
  /** Resets at every local minute (:00 seconds). */
  PER_MINUTE: 'per_minute',
  /** Resets at every local hour (:00 minutes). */
  PER_HOUR: 'per_hour',
  /** Resets at local midnight. */
  PER_DAY: 'per_day',
  /** Resets on Monday at 00:00 local. */
  PER_WEEK: 'per_week',
  /** Resets on the 1st of the month at 00:00 local. */
  PER_MONTH: 'per_month',
  /** Never resets. */
  TOTAL: 'total',
} as const;

/** How often a quota resets: one of the values of {@link QuotaPeriod}. */
export type QuotaPeriod = (typeof QuotaPeriod)[keyof typeof QuotaPeriod];

/** All seven quota periods, `per_request` through `total`, in the order of {@link QuotaPeriod}. */
export const QUOTA_PERIODS: readonly QuotaPeriod[] = Object.freeze([
  QuotaPeriod.PER_REQUEST,
  QuotaPeriod.PER_MINUTE,
  QuotaPeriod.PER_HOUR,
  QuotaPeriod.PER_DAY,
  QuotaPeriod.PER_WEEK,
  QuotaPeriod.PER_MONTH,
  QuotaPeriod.TOTAL,
]);

/** Periods that have calendar windows (every period but per_request and total). */
export type WindowedPeriod = Exclude<QuotaPeriod, 'per_request' | 'total'>;

/** Whether `period` has calendar windows, i.e. is neither `per_request` nor `total`. */
export function isWindowedPeriod(period: QuotaPeriod): period is WindowedPeriod {
  return (
    period === QuotaPeriod.PER_MINUTE ||
    period === QuotaPeriod.PER_HOUR ||
    period === QuotaPeriod.PER_DAY ||
    period === QuotaPeriod.PER_WEEK ||
    period === QuotaPeriod.PER_MONTH
  );
}

/** A calendar window [start, end) in epoch milliseconds. */
export interface TimeWindow {
  /** First instant in the window (inclusive), epoch ms. */
  readonly start: number;
  /** First instant of the next window (exclusive), epoch ms. */
  readonly end: number;
}

const MINUTE_MS = 60_000;
const HOUR_MS = 3_600_000;

function floorMod(a: number, b: number): number {
  return ((a % b) + b) % b;
}

/**
 * Windows are handed out and cached (see {@link WindowCache}); freezing them stops one caller from
 * corrupting the window every other caller sees.
 */
function makeWindow(start: number, end: number): TimeWindow {
  return Object.freeze({ start, end });
}

/**
 * A minute or hour window. Each instant is read at its own offset, so in a fall-back overlap the
 * repeated local hour is a window of its own. An offset change inside a unit (e.g. the 30-minute
 * shifts of Australia/Lord_Howe) cuts the window there, which keeps windows tiling time.
 */
function clockWindow(unit: number, at: number, timeZone: string): TimeWindow {
  const offset = getTimeZoneOffset(at, timeZone);
  const local = at + offset;
  let start = local - floorMod(local, unit) - offset;
  let end = start + unit;
  // Offset changes are rare, so only search for one when the offset at an edge differs.
  if (getTimeZoneOffset(start, timeZone) !== offset) {
    start = findOffsetChange(start, at, timeZone) ?? start;
  }
  // `end` is exclusive, so a change exactly at `end` is the next window's business.
  if (getTimeZoneOffset(end - 1, timeZone) !== offset) {
    end = findOffsetChange(at, end - 1, timeZone) ?? end;
  }
  return makeWindow(start, end);
}

/**
 * A day, week or month window: from the start of its first local day to the start of the next
 * window's first local day (see `startOfZonedDay` for gaps and overlaps at midnight).
 */
function calendarWindow(period: WindowedPeriod, at: number, timeZone: string): TimeWindow {
  const { year, month, day, weekday } = getZonedFields(at, timeZone);
  // Window k (k = 0 holds the instant's local date) starts on this local day; days and months
  // roll over through Date.UTC inside startOfZonedDay.
  const startOf: (k: number) => number =
    period === QuotaPeriod.PER_MONTH
      ? (k) => startOfZonedDay(year, month + k, 1, timeZone)
      : period === QuotaPeriod.PER_WEEK
        ? (k) => startOfZonedDay(year, month, day - (weekday - 1) + 7 * k, timeZone)
        : (k) => startOfZonedDay(year, month, day + k, timeZone);
  let k = 0;
  let start = startOf(0);
  let end = startOf(1);
  // Newfoundland (America/St_Johns, until 2010) fell back at 00:01 to 23:01 the day before, so
  // midnight read twice and the new day starts at the first one; the repeated 23:01-24:00 reads as
  // the old date yet lies in the new day's window. Stepping keeps windows tiling time there; the
  // bound only guards against corrupt tz data.
  while (at >= end && k < 3) {
    k += 1;
    start = end;
    end = startOf(k + 1);
  }
  // The mirror case, an instant before the start of its own date, is not known in tz data; it is
  // handled anyway so that a future rule cannot produce a window that misses its instant.
  while (at < start && k > -3) {
    k -= 1;
    end = start;
    start = startOf(k);
  }
  return makeWindow(start, end);
}

function assertFinite(value: number, name: string): void {
  if (!Number.isFinite(value))
    throw new RangeError(`${name} must be a finite number, got ${value}`);
}

/**
 * The calendar window of `period` that contains the instant `at`, in `timeZone`.
 *
 * Windows are aligned to the local calendar: `per_minute` at :00 seconds, `per_hour` at local
 * :00 minutes (in Asia/Kolkata, +05:30, that is UTC :30), `per_day` at local midnight, `per_week`
 * on Monday 00:00 and `per_month` on the 1st at 00:00. `end` is the next window's `start`, so a DST
 * day lasts 23 or 25 hours. In a fall-back overlap the repeated local hour is a separate one-hour
 * window. A day whose midnight is skipped starts where the clock jumps (01:00 in America/Santiago);
 * one with two midnights starts at the first. An offset change inside an hour or minute (the
 * 30-minute DST of Australia/Lord_Howe) ends that window early, so such windows are shorter.
 * Windows tile time: `start <= at < end`, and `windowAt(period, end, timeZone).start === end`.
 *
 * @param period - A period with windows (see {@link isWindowedPeriod}).
 * @param at - Any instant, in epoch milliseconds.
 * @param timeZone - IANA time zone name, e.g. `'UTC'` or `'Europe/Berlin'`.
 * @returns A frozen window.
 * @throws RangeError for an invalid time zone, an unknown period or a non-finite instant.
 */
export function windowAt(period: WindowedPeriod, at: number, timeZone: string): TimeWindow {
  assertFinite(at, 'at');
  assertValidTimeZone(timeZone);
  switch (period) {
    case QuotaPeriod.PER_MINUTE:
      return clockWindow(MINUTE_MS, at, timeZone);
    case QuotaPeriod.PER_HOUR:
      return clockWindow(HOUR_MS, at, timeZone);
    case QuotaPeriod.PER_DAY:
    case QuotaPeriod.PER_WEEK:
    case QuotaPeriod.PER_MONTH:
      return calendarWindow(period, at, timeZone);
    default:
      throw new RangeError(`Period has no calendar windows: ${String(period)}`);
  }
}

/**
 * The window immediately before `window` (it ends at window.start). `window` is expected to be one
 * that {@link windowAt} returned for the same period and zone.
 *
 * @throws RangeError for an invalid time zone, an unknown period or a non-finite `window.start`.
 */
export function previousWindow(
  period: WindowedPeriod,
  window: TimeWindow,
  timeZone: string,
): TimeWindow {
  assertFinite(window.start, 'window.start');
  return windowAt(period, window.start - 1, timeZone);
}

interface CacheEntry {
  current: TimeWindow;
  /** Computed on first use: most rules never look back. */
  previous: TimeWindow | undefined;
}

/**
 * Caches the current window per period so the hot path does no calendar math while `now` stays
 * inside it (an engine calls current() on every request; it must cost a couple of comparisons when
 * cached). Also returns the cached previous window (for sliding-window rules).
 *
 * The returned windows are frozen and shared: the same object comes back for as long as `now` stays
 * inside it, so callers may compare windows by identity to detect a reset. `now` may move backwards
 * (clock skew); the cache then recomputes rather than returning a window that does not contain it.
 */
export class WindowCache {
  /** The IANA time zone every window of this cache is computed in. */
  readonly timeZone: string;

  // One slot per period, all present from the start so the object keeps a single shape.
  private readonly entries: Record<WindowedPeriod, CacheEntry | undefined> = {
    per_minute: undefined,
    per_hour: undefined,
    per_day: undefined,
    per_week: undefined,
    per_month: undefined,
  };

  /**
   * @param timeZone - IANA time zone name, e.g. `'UTC'` or `'Europe/Berlin'`.
   * @throws RangeError for an invalid time zone.
   */
  constructor(timeZone: string) {
    assertValidTimeZone(timeZone);
    this.timeZone = timeZone;
  }

  /**
   * The window of `period` containing `now` (epoch ms); the same object while `now` stays in it.
   *
   * @throws RangeError for an unknown period or a non-finite `now`.
   */
  current(period: WindowedPeriod, now: number): TimeWindow {
    const entry = this.entries[period];
    if (entry !== undefined && now >= entry.current.start && now < entry.current.end) {
      return entry.current;
    }
    return this.refresh(period, now).current;
  }

  /**
   * The window just before the one containing `now` (it ends where that one starts); the same
   * object while `now` stays in the current window.
   *
   * @throws RangeError for an unknown period or a non-finite `now`.
   */
  previous(period: WindowedPeriod, now: number): TimeWindow {
    let entry = this.entries[period];
    if (entry === undefined || !(now >= entry.current.start && now < entry.current.end)) {
      entry = this.refresh(period, now);
    }
    if (entry.previous === undefined) {
      entry.previous = previousWindow(period, entry.current, this.timeZone);
    }
    return entry.previous;
  }

  private refresh(period: WindowedPeriod, now: number): CacheEntry {
    const old = this.entries[period];
    const current = windowAt(period, now, this.timeZone);
    // Time usually just rolled into the next window, whose predecessor is the one we already have.
    const previous =
      old !== undefined && old.current.end === current.start ? old.current : undefined;
    const entry: CacheEntry = { current, previous };
    this.entries[period] = entry;
    return entry;
  }
}
