import { describe, expect, it } from 'vitest';
import {
  isWindowedPeriod,
  previousWindow,
  QUOTA_PERIODS,
  QuotaPeriod,
  type TimeWindow,
  WindowCache,
  type WindowedPeriod,
  windowAt,
} from '../src/periods.js';
import {
  findOffsetChange,
  getTimeZoneOffset,
  getZonedFields,
  isUtcTimeZone,
  isValidTimeZone,
  startOfZonedDay,
  zonedDateTimeToEpoch,
} from '../src/time-zone.js';

// Every expected instant below was derived by hand from the zone's rules, not printed by the code:
// Kolkata +05:30; Moscow +03 all year; Berlin +01/+02 switching at 01:00Z on the last Sundays of
// March and October; New York -05/-04 switching at 02:00 local on the second Sunday of March and
// the first Sunday of November; Santiago -04/-03 switching at local midnight (24:00 -> 01:00 on
// the first Sunday of September, 24:00 -> 23:00 on the first Sunday of April); Havana -05/-04
// switching 00:00 -> 01:00 on the second Sunday of March and 01:00 -> 00:00 on the first Sunday of
// November; Lord Howe +10:30/+11 switching by half an hour at 02:00 local. Weekdays: 2026-01-01
// is a Thursday, so the 2026-03-08, 03-15, 03-29, 09-06, 10-25 and 11-01 used here are Sundays.

const MINUTE = 60_000;
const HOUR = 3_600_000;
const DAY = 86_400_000;

const ms = (iso: string): number => {
  const value = Date.parse(iso);
  if (Number.isNaN(value)) throw new Error(`bad ISO string in test: ${iso}`);
  return value;
};
const iso = (value: number): string => new Date(value).toISOString();
const asIso = (window: TimeWindow) => ({ start: iso(window.start), end: iso(window.end) });

interface WindowCase {
  readonly name: string;
  readonly period: WindowedPeriod;
  readonly zone: string;
  readonly at: string;
  readonly start: string;
  readonly end: string;
}

const windowCases: readonly WindowCase[] = [
  // UTC: the last millisecond of a window and the first of the next, for every period.
  {
    name: 'UTC minute, last ms',
    period: 'per_minute',
    zone: 'UTC',
    at: '2026-03-15T10:20:59.999Z',
    start: '2026-03-15T10:20:00.000Z',
    end: '2026-03-15T10:21:00.000Z',
  },
  {
    name: 'UTC minute, first ms of next',
    period: 'per_minute',
    zone: 'UTC',
    at: '2026-03-15T10:21:00.000Z',
    start: '2026-03-15T10:21:00.000Z',
    end: '2026-03-15T10:22:00.000Z',
  },
  {
    name: 'UTC hour, last ms',
    period: 'per_hour',
    zone: 'UTC',
    at: '2026-03-15T10:59:59.999Z',
    start: '2026-03-15T10:00:00.000Z',
    end: '2026-03-15T11:00:00.000Z',
  },
  {
    name: 'UTC hour, first ms of next',
    period: 'per_hour',
    zone: 'UTC',
    at: '2026-03-15T11:00:00.000Z',
    start: '2026-03-15T11:00:00.000Z',
    end: '2026-03-15T12:00:00.000Z',
  },
  {
    name: 'UTC day, last ms',
    period: 'per_day',
    zone: 'UTC',
    at: '2026-03-15T23:59:59.999Z',
    start: '2026-03-15T00:00:00.000Z',
    end: '2026-03-16T00:00:00.000Z',
  },
  {
    name: 'UTC day, first ms of next',
    period: 'per_day',
    zone: 'UTC',
    at: '2026-03-16T00:00:00.000Z',
    start: '2026-03-16T00:00:00.000Z',
    end: '2026-03-17T00:00:00.000Z',
  },
  {
    name: 'UTC week, last ms (Sunday)',
    period: 'per_week',
    zone: 'UTC',
    at: '2026-03-15T23:59:59.999Z',
    start: '2026-03-09T00:00:00.000Z',
    end: '2026-03-16T00:00:00.000Z',
  },
  {
    name: 'UTC week, first ms of next (Monday)',
    period: 'per_week',
    zone: 'UTC',
    at: '2026-03-16T00:00:00.000Z',
    start: '2026-03-16T00:00:00.000Z',
    end: '2026-03-23T00:00:00.000Z',
  },
  {
    name: 'UTC month, last ms of the year',
    period: 'per_month',
    zone: 'UTC',
    at: '2026-12-31T23:59:59.999Z',
    start: '2026-12-01T00:00:00.000Z',
    end: '2027-01-01T00:00:00.000Z',
  },
  {
    name: 'UTC month, first ms of the next year',
    period: 'per_month',
    zone: 'UTC',
    at: '2027-01-01T00:00:00.000Z',
    start: '2027-01-01T00:00:00.000Z',
    end: '2027-02-01T00:00:00.000Z',
  },
  {
    name: 'UTC day at the epoch',
    period: 'per_day',
    zone: 'UTC',
    at: '1970-01-01T00:00:00.000Z',
    start: '1970-01-01T00:00:00.000Z',
    end: '1970-01-02T00:00:00.000Z',
  },
  {
    name: 'UTC week at the epoch (a Thursday) starts in 1969',
    period: 'per_week',
    zone: 'UTC',
    at: '1970-01-01T00:00:00.000Z',
    start: '1969-12-29T00:00:00.000Z',
    end: '1970-01-05T00:00:00.000Z',
  },
  {
    name: 'UTC February 2100 (not a leap year)',
    period: 'per_month',
    zone: 'UTC',
    at: '2100-02-28T23:59:59.999Z',
    start: '2100-02-01T00:00:00.000Z',
    end: '2100-03-01T00:00:00.000Z',
  },
  {
    name: 'UTC last day of 2100',
    period: 'per_day',
    zone: 'UTC',
    at: '2100-12-31T12:00:00.000Z',
    start: '2100-12-31T00:00:00.000Z',
    end: '2101-01-01T00:00:00.000Z',
  },

  // Asia/Kolkata, +05:30: minutes align with UTC, hours start at UTC :30.
  {
    name: 'Kolkata minute, last ms',
    period: 'per_minute',
    zone: 'Asia/Kolkata',
    at: '2026-05-10T12:34:59.999Z',
    start: '2026-05-10T12:34:00.000Z',
    end: '2026-05-10T12:35:00.000Z',
  },
  {
    name: 'Kolkata minute, first ms of next',
    period: 'per_minute',
    zone: 'Asia/Kolkata',
    at: '2026-05-10T12:35:00.000Z',
    start: '2026-05-10T12:35:00.000Z',
    end: '2026-05-10T12:36:00.000Z',
  },
  {
    name: 'Kolkata hour, last ms (17:59:59.999 local)',
    period: 'per_hour',
    zone: 'Asia/Kolkata',
    at: '2026-05-10T12:29:59.999Z',
    start: '2026-05-10T11:30:00.000Z',
    end: '2026-05-10T12:30:00.000Z',
  },
  {
    name: 'Kolkata hour, first ms of next (18:00 local)',
    period: 'per_hour',
    zone: 'Asia/Kolkata',
    at: '2026-05-10T12:30:00.000Z',
    start: '2026-05-10T12:30:00.000Z',
    end: '2026-05-10T13:30:00.000Z',
  },
  {
    name: 'Kolkata day starts at 18:30Z the day before',
    period: 'per_day',
    zone: 'Asia/Kolkata',
    at: '2026-05-10T18:29:59.999Z',
    start: '2026-05-09T18:30:00.000Z',
    end: '2026-05-10T18:30:00.000Z',
  },

  // Europe/Moscow, +03 with no DST.
  {
    name: 'Moscow day, last ms of January 31',
    period: 'per_day',
    zone: 'Europe/Moscow',
    at: '2026-01-31T20:59:59.999Z',
    start: '2026-01-30T21:00:00.000Z',
    end: '2026-01-31T21:00:00.000Z',
  },
  {
    name: 'Moscow day, first ms of February 1',
    period: 'per_day',
    zone: 'Europe/Moscow',
    at: '2026-01-31T21:00:00.000Z',
    start: '2026-01-31T21:00:00.000Z',
    end: '2026-02-01T21:00:00.000Z',
  },
  {
    name: 'Moscow month, 2026-01-31T20:59:59.999Z is still January',
    period: 'per_month',
    zone: 'Europe/Moscow',
    at: '2026-01-31T20:59:59.999Z',
    start: '2025-12-31T21:00:00.000Z',
    end: '2026-01-31T21:00:00.000Z',
  },
  {
    name: 'Moscow month, 2026-01-31T21:00:00.000Z is February',
    period: 'per_month',
    zone: 'Europe/Moscow',
    at: '2026-01-31T21:00:00.000Z',
    start: '2026-01-31T21:00:00.000Z',
    end: '2026-02-28T21:00:00.000Z',
  },
  {
    name: 'Moscow week, last ms of Sunday February 1',
    period: 'per_week',
    zone: 'Europe/Moscow',
    at: '2026-02-01T20:59:59.999Z',
    start: '2026-01-25T21:00:00.000Z',
    end: '2026-02-01T21:00:00.000Z',
  },
  {
    name: 'Moscow week, first ms of Monday February 2',
    period: 'per_week',
    zone: 'Europe/Moscow',
    at: '2026-02-01T21:00:00.000Z',
    start: '2026-02-01T21:00:00.000Z',
    end: '2026-02-08T21:00:00.000Z',
  },
  {
    name: 'Moscow leap-year February 2028, last ms',
    period: 'per_month',
    zone: 'Europe/Moscow',
    at: '2028-02-29T20:59:59.999Z',
    start: '2028-01-31T21:00:00.000Z',
    end: '2028-02-29T21:00:00.000Z',
  },
  {
    name: 'Moscow March 2028, first ms',
    period: 'per_month',
    zone: 'Europe/Moscow',
    at: '2028-02-29T21:00:00.000Z',
    start: '2028-02-29T21:00:00.000Z',
    end: '2028-03-31T21:00:00.000Z',
  },
  {
    name: 'Moscow leap day 2028-02-29',
    period: 'per_day',
    zone: 'Europe/Moscow',
    at: '2028-02-29T12:00:00.000Z',
    start: '2028-02-28T21:00:00.000Z',
    end: '2028-02-29T21:00:00.000Z',
  },

  // Europe/Berlin: 2026-03-29 springs forward (23 h), 2026-10-25 falls back (25 h).
  {
    name: 'Berlin spring-forward day is 23 h',
    period: 'per_day',
    zone: 'Europe/Berlin',
    at: '2026-03-29T12:00:00.000Z',
    start: '2026-03-28T23:00:00.000Z',
    end: '2026-03-29T22:00:00.000Z',
  },
  {
    name: 'Berlin spring-forward day, last ms',
    period: 'per_day',
    zone: 'Europe/Berlin',
    at: '2026-03-29T21:59:59.999Z',
    start: '2026-03-28T23:00:00.000Z',
    end: '2026-03-29T22:00:00.000Z',
  },
  {
    name: 'Berlin day after spring-forward',
    period: 'per_day',
    zone: 'Europe/Berlin',
    at: '2026-03-29T22:00:00.000Z',
    start: '2026-03-29T22:00:00.000Z',
    end: '2026-03-30T22:00:00.000Z',
  },
  {
    name: 'Berlin fall-back day is 25 h',
    period: 'per_day',
    zone: 'Europe/Berlin',
    at: '2026-10-25T12:00:00.000Z',
    start: '2026-10-24T22:00:00.000Z',
    end: '2026-10-25T23:00:00.000Z',
  },
  {
    name: 'Berlin hour before the spring gap (01:59:59.999 +01)',
    period: 'per_hour',
    zone: 'Europe/Berlin',
    at: '2026-03-29T00:59:59.999Z',
    start: '2026-03-29T00:00:00.000Z',
    end: '2026-03-29T01:00:00.000Z',
  },
  {
    name: 'Berlin hour after the spring gap (03:00 +02)',
    period: 'per_hour',
    zone: 'Europe/Berlin',
    at: '2026-03-29T01:00:00.000Z',
    start: '2026-03-29T01:00:00.000Z',
    end: '2026-03-29T02:00:00.000Z',
  },
  {
    name: 'Berlin first 02:30 of the fall-back overlap (+02)',
    period: 'per_hour',
    zone: 'Europe/Berlin',
    at: '2026-10-25T00:30:00.000Z',
    start: '2026-10-25T00:00:00.000Z',
    end: '2026-10-25T01:00:00.000Z',
  },
  {
    name: 'Berlin first 02:xx hour, last ms',
    period: 'per_hour',
    zone: 'Europe/Berlin',
    at: '2026-10-25T00:59:59.999Z',
    start: '2026-10-25T00:00:00.000Z',
    end: '2026-10-25T01:00:00.000Z',
  },
  {
    name: 'Berlin second 02:30 of the fall-back overlap (+01)',
    period: 'per_hour',
    zone: 'Europe/Berlin',
    at: '2026-10-25T01:30:00.000Z',
    start: '2026-10-25T01:00:00.000Z',
    end: '2026-10-25T02:00:00.000Z',
  },
  {
    name: 'Berlin week spanning spring-forward is 167 h',
    period: 'per_week',
    zone: 'Europe/Berlin',
    at: '2026-03-25T12:00:00.000Z',
    start: '2026-03-22T23:00:00.000Z',
    end: '2026-03-29T22:00:00.000Z',
  },

  // America/New_York: 2026-03-08 (23 h) and 2026-11-01 (25 h).
  {
    name: 'New York spring-forward day is 23 h',
    period: 'per_day',
    zone: 'America/New_York',
    at: '2026-03-08T12:00:00.000Z',
    start: '2026-03-08T05:00:00.000Z',
    end: '2026-03-09T04:00:00.000Z',
  },
  {
    name: 'New York fall-back day is 25 h',
    period: 'per_day',
    zone: 'America/New_York',
    at: '2026-11-01T12:00:00.000Z',
    start: '2026-11-01T04:00:00.000Z',
    end: '2026-11-02T05:00:00.000Z',
  },
  {
    name: 'New York hour before the spring gap (01:59:59.999 EST)',
    period: 'per_hour',
    zone: 'America/New_York',
    at: '2026-03-08T06:59:59.999Z',
    start: '2026-03-08T06:00:00.000Z',
    end: '2026-03-08T07:00:00.000Z',
  },
  {
    name: 'New York hour after the spring gap (03:00 EDT)',
    period: 'per_hour',
    zone: 'America/New_York',
    at: '2026-03-08T07:00:00.000Z',
    start: '2026-03-08T07:00:00.000Z',
    end: '2026-03-08T08:00:00.000Z',
  },
  {
    name: 'New York first 01:30 (EDT)',
    period: 'per_hour',
    zone: 'America/New_York',
    at: '2026-11-01T05:30:00.000Z',
    start: '2026-11-01T05:00:00.000Z',
    end: '2026-11-01T06:00:00.000Z',
  },
  {
    name: 'New York second 01:30 (EST)',
    period: 'per_hour',
    zone: 'America/New_York',
    at: '2026-11-01T06:30:00.000Z',
    start: '2026-11-01T06:00:00.000Z',
    end: '2026-11-01T07:00:00.000Z',
  },
  {
    name: 'New York week spanning fall-back is 169 h',
    period: 'per_week',
    zone: 'America/New_York',
    at: '2026-10-28T12:00:00.000Z',
    start: '2026-10-26T04:00:00.000Z',
    end: '2026-11-02T05:00:00.000Z',
  },

  // Zones whose DST changes happen at midnight.
  {
    name: 'Santiago 2026-09-06 has no midnight: the day starts at 01:00 -03 and is 23 h',
    period: 'per_day',
    zone: 'America/Santiago',
    at: '2026-09-06T04:00:00.000Z',
    start: '2026-09-06T04:00:00.000Z',
    end: '2026-09-07T03:00:00.000Z',
  },
  {
    name: 'Santiago 2026-09-05 ends at the gap (24:00 -04)',
    period: 'per_day',
    zone: 'America/Santiago',
    at: '2026-09-06T03:59:59.999Z',
    start: '2026-09-05T04:00:00.000Z',
    end: '2026-09-06T04:00:00.000Z',
  },
  {
    name: 'Santiago week containing the gap starts at 00:00 -04 and ends at 00:00 -03',
    period: 'per_week',
    zone: 'America/Santiago',
    at: '2026-09-03T12:00:00.000Z',
    start: '2026-08-31T04:00:00.000Z',
    end: '2026-09-07T03:00:00.000Z',
  },
  {
    name: 'Santiago 2026-04-04 repeats 23:00-24:00, so it is 25 h',
    period: 'per_day',
    zone: 'America/Santiago',
    at: '2026-04-05T03:30:00.000Z',
    start: '2026-04-04T03:00:00.000Z',
    end: '2026-04-05T04:00:00.000Z',
  },
  {
    name: 'Havana 2026-03-08 has no midnight: the day starts at 01:00 -04 and is 23 h',
    period: 'per_day',
    zone: 'America/Havana',
    at: '2026-03-08T05:00:00.000Z',
    start: '2026-03-08T05:00:00.000Z',
    end: '2026-03-09T04:00:00.000Z',
  },
  {
    name: 'Havana 2026-11-01 has two midnights: the day starts at the first and is 25 h',
    period: 'per_day',
    zone: 'America/Havana',
    at: '2026-11-01T05:30:00.000Z',
    start: '2026-11-01T04:00:00.000Z',
    end: '2026-11-02T05:00:00.000Z',
  },

  // America/St_Johns fell back at 00:01 NDT (-02:30) to 23:01 NST (-03:30) until 2010, so on
  // 2009-11-01 midnight read twice (02:30Z and 03:30Z) and 23:01-24:00 of October 31 repeated.
  {
    name: 'St Johns 2009-10-31 ends at the first midnight of November 1',
    period: 'per_day',
    zone: 'America/St_Johns',
    at: '2009-11-01T02:29:59.999Z',
    start: '2009-10-31T02:30:00.000Z',
    end: '2009-11-01T02:30:00.000Z',
  },
  {
    name: 'St Johns repeated 23:15 of October 31 lies in the November 1 window (25 h)',
    period: 'per_day',
    zone: 'America/St_Johns',
    at: '2009-11-01T02:45:00.000Z',
    start: '2009-11-01T02:30:00.000Z',
    end: '2009-11-02T03:30:00.000Z',
  },
  {
    name: 'St Johns repeated 23:15 of October 31 lies in the November window',
    period: 'per_month',
    zone: 'America/St_Johns',
    at: '2009-11-01T02:45:00.000Z',
    start: '2009-11-01T02:30:00.000Z',
    end: '2009-12-01T03:30:00.000Z',
  },
  {
    name: 'St Johns 00:00 NDT hour is cut to one minute by the 00:01 change',
    period: 'per_hour',
    zone: 'America/St_Johns',
    at: '2009-11-01T02:30:30.000Z',
    start: '2009-11-01T02:30:00.000Z',
    end: '2009-11-01T02:31:00.000Z',
  },
  {
    name: 'St Johns repeated 23:xx hour starts at the change (23:01 NST)',
    period: 'per_hour',
    zone: 'America/St_Johns',
    at: '2009-11-01T02:31:00.000Z',
    start: '2009-11-01T02:31:00.000Z',
    end: '2009-11-01T03:30:00.000Z',
  },

  // Australia/Lord_Howe shifts by 30 minutes: the change cuts the hour it falls in.
  {
    name: 'Lord Howe hour before fall-back (01:59:59.999 +11)',
    period: 'per_hour',
    zone: 'Australia/Lord_Howe',
    at: '2026-04-04T14:59:59.999Z',
    start: '2026-04-04T14:00:00.000Z',
    end: '2026-04-04T15:00:00.000Z',
  },
  {
    name: 'Lord Howe repeated 01:30-02:00 (+10:30) is a 30-minute window',
    period: 'per_hour',
    zone: 'Australia/Lord_Howe',
    at: '2026-04-04T15:00:00.000Z',
    start: '2026-04-04T15:00:00.000Z',
    end: '2026-04-04T15:30:00.000Z',
  },
  {
    name: 'Lord Howe 02:30-03:00 (+11) after spring-forward is a 30-minute window',
    period: 'per_hour',
    zone: 'Australia/Lord_Howe',
    at: '2026-10-03T15:45:00.000Z',
    start: '2026-10-03T15:30:00.000Z',
    end: '2026-10-03T16:00:00.000Z',
  },
];

describe('windowAt', () => {
  it.each(windowCases)('$name', ({ period, zone, at, start, end }) => {
    expect(asIso(windowAt(period, ms(at), zone))).toEqual({ start, end });
  });

  it('gives DST days their real length', () => {
    const length = (period: WindowedPeriod, at: string, zone: string) => {
      const window = windowAt(period, ms(at), zone);
      return window.end - window.start;
    };
    expect(length('per_day', '2026-03-29T12:00:00Z', 'Europe/Berlin')).toBe(23 * HOUR);
    expect(length('per_day', '2026-10-25T12:00:00Z', 'Europe/Berlin')).toBe(25 * HOUR);
    expect(length('per_day', '2026-03-08T12:00:00Z', 'America/New_York')).toBe(23 * HOUR);
    expect(length('per_day', '2026-11-01T12:00:00Z', 'America/New_York')).toBe(25 * HOUR);
    expect(length('per_week', '2026-03-25T12:00:00Z', 'Europe/Berlin')).toBe(167 * HOUR);
    expect(length('per_week', '2026-10-28T12:00:00Z', 'America/New_York')).toBe(169 * HOUR);
    expect(length('per_month', '2028-02-15T12:00:00Z', 'Europe/Moscow')).toBe(29 * DAY);
  });

  it('accepts time zone aliases and names in any case', () => {
    expect(asIso(windowAt('per_day', ms('2026-01-31T21:00:00Z'), 'europe/moscow'))).toEqual({
      start: '2026-01-31T21:00:00.000Z',
      end: '2026-02-01T21:00:00.000Z',
    });
    expect(asIso(windowAt('per_hour', ms('2026-05-10T12:30:00Z'), 'Asia/Calcutta'))).toEqual({
      start: '2026-05-10T12:30:00.000Z',
      end: '2026-05-10T13:30:00.000Z',
    });
  });

  it('returns frozen windows', () => {
    expect(Object.isFrozen(windowAt('per_day', 0, 'UTC'))).toBe(true);
  });

  it('throws a RangeError for an invalid time zone', () => {
    expect(() => windowAt('per_day', 0, 'Mars/Olympus_Mons')).toThrow(RangeError);
    expect(() => windowAt('per_minute', 0, '')).toThrow(RangeError);
  });

  it('throws a RangeError for a non-finite instant or a period without windows', () => {
    expect(() => windowAt('per_day', Number.NaN, 'UTC')).toThrow(RangeError);
    expect(() => windowAt('per_day', Number.POSITIVE_INFINITY, 'Europe/Berlin')).toThrow(
      RangeError,
    );
    expect(() => windowAt('total' as WindowedPeriod, 0, 'UTC')).toThrow(RangeError);
  });

  it('never calls Intl for UTC', () => {
    const proto = Intl.DateTimeFormat.prototype;
    const original = proto.formatToParts;
    proto.formatToParts = () => {
      throw new Error('Intl used on the UTC fast path');
    };
    try {
      for (const period of [
        'per_minute',
        'per_hour',
        'per_day',
        'per_week',
        'per_month',
      ] as const) {
        const window = windowAt(period, ms('2026-07-15T12:34:56.789Z'), 'UTC');
        expect(previousWindow(period, window, 'Etc/UTC').end).toBe(window.start);
      }
      expect(startOfZonedDay(2026, 7, 15, 'GMT')).toBe(ms('2026-07-15T00:00:00Z'));
    } finally {
      proto.formatToParts = original;
    }
  });
});

describe('previousWindow', () => {
  const cases: readonly (WindowCase & { readonly prevStart: string; readonly prevEnd: string })[] =
    [
      {
        name: 'Moscow February 2026 follows January',
        period: 'per_month',
        zone: 'Europe/Moscow',
        at: '2026-02-10T00:00:00.000Z',
        start: '2026-01-31T21:00:00.000Z',
        end: '2026-02-28T21:00:00.000Z',
        prevStart: '2025-12-31T21:00:00.000Z',
        prevEnd: '2026-01-31T21:00:00.000Z',
      },
      {
        name: 'UTC January follows December of the previous year',
        period: 'per_month',
        zone: 'UTC',
        at: '2027-01-15T00:00:00.000Z',
        start: '2027-01-01T00:00:00.000Z',
        end: '2027-02-01T00:00:00.000Z',
        prevStart: '2026-12-01T00:00:00.000Z',
        prevEnd: '2027-01-01T00:00:00.000Z',
      },
      {
        name: 'Berlin 2026-03-30 follows the 23 h spring-forward day',
        period: 'per_day',
        zone: 'Europe/Berlin',
        at: '2026-03-30T10:00:00.000Z',
        start: '2026-03-29T22:00:00.000Z',
        end: '2026-03-30T22:00:00.000Z',
        prevStart: '2026-03-28T23:00:00.000Z',
        prevEnd: '2026-03-29T22:00:00.000Z',
      },
      {
        name: 'New York 2026-11-02 follows the 25 h fall-back day',
        period: 'per_day',
        zone: 'America/New_York',
        at: '2026-11-02T12:00:00.000Z',
        start: '2026-11-02T05:00:00.000Z',
        end: '2026-11-03T05:00:00.000Z',
        prevStart: '2026-11-01T04:00:00.000Z',
        prevEnd: '2026-11-02T05:00:00.000Z',
      },
      {
        name: 'Berlin second 02:xx hour follows the first',
        period: 'per_hour',
        zone: 'Europe/Berlin',
        at: '2026-10-25T01:30:00.000Z',
        start: '2026-10-25T01:00:00.000Z',
        end: '2026-10-25T02:00:00.000Z',
        prevStart: '2026-10-25T00:00:00.000Z',
        prevEnd: '2026-10-25T01:00:00.000Z',
      },
      {
        name: 'Santiago 23 h day follows the day that ends in the gap',
        period: 'per_day',
        zone: 'America/Santiago',
        at: '2026-09-06T12:00:00.000Z',
        start: '2026-09-06T04:00:00.000Z',
        end: '2026-09-07T03:00:00.000Z',
        prevStart: '2026-09-05T04:00:00.000Z',
        prevEnd: '2026-09-06T04:00:00.000Z',
      },
      {
        name: 'Kolkata minute follows the previous minute',
        period: 'per_minute',
        zone: 'Asia/Kolkata',
        at: '2026-05-10T12:35:00.000Z',
        start: '2026-05-10T12:35:00.000Z',
        end: '2026-05-10T12:36:00.000Z',
        prevStart: '2026-05-10T12:34:00.000Z',
        prevEnd: '2026-05-10T12:35:00.000Z',
      },
    ];

  it.each(cases)('$name', ({ period, zone, at, start, end, prevStart, prevEnd }) => {
    const window = windowAt(period, ms(at), zone);
    expect(asIso(window)).toEqual({ start, end });
    expect(asIso(previousWindow(period, window, zone))).toEqual({ start: prevStart, end: prevEnd });
  });

  it('throws a RangeError for an invalid time zone', () => {
    expect(() => previousWindow('per_day', { start: 0, end: DAY }, 'Nowhere/City')).toThrow(
      RangeError,
    );
  });
});

/** Deterministic PRNG (mulberry32) so the property tests are reproducible. */
function mulberry32(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}

const WINDOWED: readonly WindowedPeriod[] = [
  'per_minute',
  'per_hour',
  'per_day',
  'per_week',
  'per_month',
];

const MAX_LENGTH: Record<WindowedPeriod, number> = {
  per_minute: MINUTE,
  per_hour: HOUR,
  // A day can lose or gain a little over an hour, or a whole day when a zone crosses the date line.
  per_day: 26 * HOUR,
  per_week: 7 * DAY + 2 * HOUR,
  per_month: 31 * DAY + 2 * HOUR,
};

const PROPERTY_ZONES = [
  'UTC',
  'Europe/Berlin',
  'America/New_York',
  'Asia/Kolkata',
  'Europe/Moscow',
  'America/Santiago',
  'America/Havana',
  'Australia/Lord_Howe',
  'America/St_Johns',
  'America/Goose_Bay',
  'Pacific/Chatham',
  'Asia/Kathmandu',
  'Pacific/Apia',
  'Africa/Monrovia',
] as const;

const FROM_1970 = ms('1970-01-01T00:00:00Z');
const TO_2100 = ms('2100-12-31T23:59:59.999Z');

/** Instants on and right around the offset changes the table above is built on. */
const TRANSITIONS = [
  '2026-03-29T01:00:00Z',
  '2026-10-25T01:00:00Z',
  '2026-03-08T07:00:00Z',
  '2026-11-01T06:00:00Z',
  '2026-09-06T04:00:00Z',
  '2026-04-05T03:00:00Z',
  '2026-03-08T05:00:00Z',
  '2026-11-01T05:00:00Z',
  '2026-04-04T15:00:00Z',
  '2026-10-03T15:30:00Z',
  '2011-12-30T10:00:00Z', // Pacific/Apia skipped 2011-12-30 entirely.
  '1972-01-07T00:44:30Z', // Africa/Monrovia moved from -00:44:30 to +00:00.
  '1985-12-31T18:30:00Z', // Asia/Kathmandu moved from +05:30 to +05:45.
  '2009-11-01T02:31:00Z', // America/St_Johns fell back from 00:01 to 23:01 the day before.
  '1989-10-29T03:01:00Z', // America/Goose_Bay, likewise.
].map(ms);

/** Tiling violations for one instant, as messages; empty when all is well. */
function tilingProblems(period: WindowedPeriod, at: number, zone: string): string[] {
  const window = windowAt(period, at, zone);
  const where = `${period} ${zone} ${iso(at)} -> ${iso(window.start)}..${iso(window.end)}`;
  const problems: string[] = [];
  const check = (ok: boolean, what: string) => {
    if (!ok) problems.push(`${where}: ${what}`);
  };
  check(window.start <= at && at < window.end, 'does not contain the instant');
  check(window.end - window.start <= MAX_LENGTH[period], 'is too long');
  check(windowAt(period, window.end, zone).start === window.end, 'next window starts elsewhere');
  const last = windowAt(period, window.end - 1, zone);
  check(last.start === window.start && last.end === window.end, 'last ms is in another window');
  const first = windowAt(period, window.start, zone);
  check(first.start === window.start && first.end === window.end, 'first ms is in another window');
  check(
    previousWindow(period, window, zone).end === window.start,
    'previous window ends elsewhere',
  );
  return problems;
}

describe('windows tile time', () => {
  it.each(PROPERTY_ZONES)('at random instants from 1970 to 2100 in %s', (zone) => {
    const random = mulberry32(0x5eed ^ zone.length);
    const problems: string[] = [];
    for (let i = 0; i < 200; i += 1) {
      const at = FROM_1970 + Math.floor(random() * (TO_2100 - FROM_1970));
      for (const period of WINDOWED) problems.push(...tilingProblems(period, at, zone));
    }
    expect(problems).toEqual([]);
  });

  it.each(PROPERTY_ZONES)('around offset changes in %s', (zone) => {
    const problems: string[] = [];
    for (const transition of TRANSITIONS) {
      for (const at of [transition - 1, transition, transition + 1, transition + 30 * MINUTE]) {
        for (const period of WINDOWED) problems.push(...tilingProblems(period, at, zone));
      }
    }
    expect(problems).toEqual([]);
  });

  it.each(['Europe/Berlin', 'America/New_York', 'Australia/Lord_Howe', 'America/Santiago'])(
    'walks the hours of 2026 in %s without gaps, each starting at a local :00 or :30',
    (zone) => {
      const first = startOfZonedDay(2026, 1, 1, zone);
      const last = startOfZonedDay(2027, 1, 1, zone);
      const problems: string[] = [];
      let window = windowAt('per_hour', first, zone);
      let count = 0;
      while (window.start < last && count < 10_000) {
        const { minute, second, millisecond } = getZonedFields(window.start, zone);
        // Only Lord Howe's half-hour shifts can start a window at a local :30.
        if ((minute !== 0 && minute !== 30) || second !== 0 || millisecond !== 0) {
          problems.push(`${iso(window.start)} starts at local :${minute}:${second}`);
        }
        const next = windowAt('per_hour', window.end, zone);
        if (next.start !== window.end) problems.push(`${iso(window.end)} is not a window start`);
        window = next;
        count += 1;
      }
      expect(problems).toEqual([]);
      expect(window.start).toBe(last);
      // 8760 hours in a common year; Lord Howe's two half-hour cuts add one window.
      expect(count).toBe(zone === 'Australia/Lord_Howe' ? 8761 : 8760);
    },
  );

  it.each(PROPERTY_ZONES)('walks the 365 days of 2026 in %s, one window per date', (zone) => {
    const problems: string[] = [];
    let window = windowAt('per_day', startOfZonedDay(2026, 1, 1, zone), zone);
    for (let day = 0; day < 365; day += 1) {
      const expected = new Date(Date.UTC(2026, 0, 1 + day)).toISOString().slice(0, 10);
      const { year, month, day: date, hour, minute } = getZonedFields(window.start, zone);
      const actual = `${year}-${String(month).padStart(2, '0')}-${String(date).padStart(2, '0')}`;
      // Midnight, or 01:00 where a DST change skips midnight (Santiago, Havana).
      if (actual !== expected || (hour !== 0 && hour !== 1) || minute !== 0) {
        problems.push(`${iso(window.start)} reads ${actual} ${hour}:${minute}, want ${expected}`);
      }
      window = windowAt('per_day', window.end, zone);
    }
    expect(problems).toEqual([]);
    expect(window.start).toBe(startOfZonedDay(2027, 1, 1, zone));
  });
});

describe('WindowCache', () => {
  it('returns the same object while inside the window and a new one after it', () => {
    const cache = new WindowCache('Europe/Berlin');
    expect(cache.timeZone).toBe('Europe/Berlin');
    const first = cache.current('per_hour', ms('2026-10-25T00:00:00Z'));
    expect(asIso(first)).toEqual({
      start: '2026-10-25T00:00:00.000Z',
      end: '2026-10-25T01:00:00.000Z',
    });
    expect(cache.current('per_hour', ms('2026-10-25T00:30:00Z'))).toBe(first);
    expect(cache.current('per_hour', ms('2026-10-25T00:59:59.999Z'))).toBe(first);

    // The repeated 02:xx hour is a new window even though the wall clock reads the same hour.
    const second = cache.current('per_hour', ms('2026-10-25T01:00:00Z'));
    expect(second).not.toBe(first);
    expect(asIso(second)).toEqual({
      start: '2026-10-25T01:00:00.000Z',
      end: '2026-10-25T02:00:00.000Z',
    });
    expect(cache.current('per_hour', ms('2026-10-25T01:59:59.999Z'))).toBe(second);
  });

  it('keeps periods apart', () => {
    const cache = new WindowCache('UTC');
    const now = ms('2026-03-15T10:20:30Z');
    const minute = cache.current('per_minute', now);
    const month = cache.current('per_month', now);
    expect(asIso(minute)).toEqual({
      start: '2026-03-15T10:20:00.000Z',
      end: '2026-03-15T10:21:00.000Z',
    });
    expect(asIso(month)).toEqual({
      start: '2026-03-01T00:00:00.000Z',
      end: '2026-04-01T00:00:00.000Z',
    });
    expect(cache.current('per_minute', now + 1_000)).toBe(minute);
    expect(cache.current('per_month', now + DAY)).toBe(month);
  });

  it('returns the cached previous window, reusing the old current one after a rollover', () => {
    const cache = new WindowCache('Europe/Moscow');
    const january = cache.current('per_month', ms('2026-01-31T20:59:59.999Z'));
    const december = cache.previous('per_month', ms('2026-01-31T20:59:59.999Z'));
    expect(asIso(december)).toEqual({
      start: '2025-11-30T21:00:00.000Z',
      end: '2025-12-31T21:00:00.000Z',
    });
    expect(cache.previous('per_month', ms('2026-01-15T00:00:00Z'))).toBe(december);

    const february = cache.current('per_month', ms('2026-01-31T21:00:00Z'));
    expect(asIso(february)).toEqual({
      start: '2026-01-31T21:00:00.000Z',
      end: '2026-02-28T21:00:00.000Z',
    });
    expect(cache.previous('per_month', ms('2026-02-01T00:00:00Z'))).toBe(january);
  });

  it('computes the previous window on its own for a cold cache', () => {
    const cache = new WindowCache('America/New_York');
    expect(asIso(cache.previous('per_day', ms('2026-11-02T12:00:00Z')))).toEqual({
      start: '2026-11-01T04:00:00.000Z',
      end: '2026-11-02T05:00:00.000Z',
    });
  });

  it('recomputes when the clock moves backwards', () => {
    const cache = new WindowCache('UTC');
    const later = cache.current('per_day', ms('2026-03-16T00:00:00Z'));
    const earlier = cache.current('per_day', ms('2026-03-15T23:59:59.999Z'));
    expect(earlier).not.toBe(later);
    expect(asIso(earlier)).toEqual({
      start: '2026-03-15T00:00:00.000Z',
      end: '2026-03-16T00:00:00.000Z',
    });
    expect(asIso(cache.previous('per_day', ms('2026-03-15T12:00:00Z')))).toEqual({
      start: '2026-03-14T00:00:00.000Z',
      end: '2026-03-15T00:00:00.000Z',
    });
  });

  it('throws a RangeError for an invalid time zone or instant', () => {
    expect(() => new WindowCache('Not/AZone')).toThrow(RangeError);
    expect(() => new WindowCache('UTC').current('per_day', Number.NaN)).toThrow(RangeError);
  });
});

describe('periods', () => {
  it('lists all seven periods in declaration order', () => {
    expect(QUOTA_PERIODS).toEqual([
      'per_request',
      'per_minute',
      'per_hour',
      'per_day',
      'per_week',
      'per_month',
      'total',
    ]);
    expect(QUOTA_PERIODS).toEqual(Object.values(QuotaPeriod));
  });

  it('knows which periods have windows', () => {
    expect(QUOTA_PERIODS.filter(isWindowedPeriod)).toEqual(WINDOWED);
    expect(isWindowedPeriod(QuotaPeriod.PER_REQUEST)).toBe(false);
    expect(isWindowedPeriod(QuotaPeriod.TOTAL)).toBe(false);
  });
});

describe('time-zone helpers', () => {
  it.each(['UTC', 'Etc/UTC', 'Europe/Moscow', 'America/Santiago', 'Asia/Kolkata', 'Etc/GMT-3'])(
    'accepts %s',
    (zone) => {
      expect(isValidTimeZone(zone)).toBe(true);
    },
  );

  it.each(['', 'Mars/Olympus_Mons', 'UTC+3', 'Europe/Moskva', 'not a zone'])(
    'rejects %j',
    (zone) => {
      expect(isValidTimeZone(zone)).toBe(false);
    },
  );

  it('recognises UTC spellings for the fast path', () => {
    expect(isUtcTimeZone('UTC')).toBe(true);
    expect(isUtcTimeZone('Etc/UTC')).toBe(true);
    expect(isUtcTimeZone('Etc/GMT0')).toBe(true);
    expect(isUtcTimeZone('Europe/London')).toBe(false);
    expect(isUtcTimeZone('bogus')).toBe(false);
  });

  it('reads offsets and wall-clock fields', () => {
    expect(getTimeZoneOffset(ms('2026-05-10T12:00:00Z'), 'Asia/Kolkata')).toBe(5.5 * HOUR);
    expect(getTimeZoneOffset(ms('2026-01-15T12:00:00Z'), 'America/New_York')).toBe(-5 * HOUR);
    expect(getTimeZoneOffset(ms('2026-07-15T12:00:00Z'), 'Europe/Berlin')).toBe(2 * HOUR);
    expect(getZonedFields(ms('2026-10-25T01:30:00.250Z'), 'Europe/Berlin')).toEqual({
      year: 2026,
      month: 10,
      day: 25,
      hour: 2,
      minute: 30,
      second: 0,
      millisecond: 250,
      weekday: 7,
    });
    expect(getZonedFields(ms('2026-01-31T21:00:00Z'), 'Europe/Moscow')).toMatchObject({
      year: 2026,
      month: 2,
      day: 1,
      hour: 0,
      weekday: 7,
    });
  });

  it('converts wall-clock times: the earlier reading in overlaps, the jump in gaps', () => {
    const berlin = 'Europe/Berlin';
    expect(iso(zonedDateTimeToEpoch({ year: 2026, month: 7, day: 1, hour: 12 }, berlin))).toBe(
      '2026-07-01T10:00:00.000Z',
    );
    // 02:30 does not exist on 2026-03-29: the clock jumps from 02:00 +01 to 03:00 +02 at 01:00Z.
    expect(
      iso(zonedDateTimeToEpoch({ year: 2026, month: 3, day: 29, hour: 2, minute: 30 }, berlin)),
    ).toBe('2026-03-29T01:00:00.000Z');
    // 02:30 happens twice on 2026-10-25: at 00:30Z (+02) and at 01:30Z (+01).
    expect(
      iso(zonedDateTimeToEpoch({ year: 2026, month: 10, day: 25, hour: 2, minute: 30 }, berlin)),
    ).toBe('2026-10-25T00:30:00.000Z');
    expect(
      iso(zonedDateTimeToEpoch({ year: 2026, month: 11, day: 1, hour: 1, minute: 30 }, 'EST5EDT')),
    ).toBe('2026-11-01T05:30:00.000Z');
  });

  it('finds the first instant of a local day', () => {
    expect(iso(startOfZonedDay(2026, 9, 6, 'America/Santiago'))).toBe('2026-09-06T04:00:00.000Z');
    expect(
      getZonedFields(startOfZonedDay(2026, 9, 6, 'America/Santiago'), 'America/Santiago'),
    ).toMatchObject({ day: 6, hour: 1, minute: 0 });
    expect(iso(startOfZonedDay(2026, 11, 1, 'America/Havana'))).toBe('2026-11-01T04:00:00.000Z');
    // Months and days roll over like Date.UTC.
    expect(iso(startOfZonedDay(2026, 13, 1, 'Europe/Moscow'))).toBe('2026-12-31T21:00:00.000Z');
    expect(iso(startOfZonedDay(2028, 3, 0, 'UTC'))).toBe('2028-02-29T00:00:00.000Z');
    // Years below 100 are not mapped to the 1900s as Date.UTC would do.
    expect(iso(startOfZonedDay(50, 1, 1, 'UTC'))).toBe('0050-01-01T00:00:00.000Z');
  });

  it('finds offset changes', () => {
    const zone = 'Europe/Berlin';
    expect(findOffsetChange(ms('2026-03-28T12:00:00Z'), ms('2026-03-29T12:00:00Z'), zone)).toBe(
      ms('2026-03-29T01:00:00Z'),
    );
    expect(findOffsetChange(ms('2026-07-01T00:00:00Z'), ms('2026-07-02T00:00:00Z'), zone)).toBe(
      undefined,
    );
    expect(findOffsetChange(0, DAY, 'UTC')).toBe(undefined);
  });

  it('throws RangeErrors for invalid zones', () => {
    expect(() => getTimeZoneOffset(0, 'Nope/Nope')).toThrow(RangeError);
    expect(() => getZonedFields(0, 'Nope/Nope')).toThrow(RangeError);
    expect(() => startOfZonedDay(2026, 1, 1, 'Nope/Nope')).toThrow(RangeError);
  });
});
