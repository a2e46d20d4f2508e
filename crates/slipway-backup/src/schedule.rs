//! When scheduled backups run: `@every <duration>` (aligned to multiples of
//! the interval since the Unix epoch, so restarts and replicas agree),
//! `@hourly`, `@daily`, `@weekly`, `@monthly`, or a five-field cron
//! expression (`minute hour day-of-month month day-of-week`, UTC) with `*`,
//! lists, ranges, steps and three-letter month and day names. As in Vixie
//! cron, when both day fields are restricted a day matching either runs.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use chrono::{Datelike, NaiveDate, NaiveDateTime, Timelike};

/// A backup schedule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Schedule {
    /// Every interval, at multiples of it since the epoch.
    Every(Duration),
    /// A cron expression (UTC).
    Cron(Box<Cron>),
}

/// A parsed five-field cron expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cron {
    text: String,
    minutes: u64,
    hours: u64,
    days: u64,
    months: u64,
    weekdays: u64,
    days_any: bool,
    weekdays_any: bool,
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Every(d) => write!(f, "@every {}s", d.as_secs()),
            Self::Cron(c) => f.write_str(&c.text),
        }
    }
}

const MONTHS: [&str; 12] = [
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];
const DAYS: [&str; 7] = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];

/// Parses `90s`, `30m`, `6h`, `1d`, `1h30m`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    if t.is_empty() {
        return Err("empty duration".into());
    }
    let mut total = 0u64;
    let mut num = String::new();
    for c in t.chars() {
        if c.is_ascii_digit() {
            num.push(c);
            continue;
        }
        let n: u64 = num
            .parse()
            .map_err(|_| format!("'{s}' is not a duration such as 90s, 30m, 6h or 1d"))?;
        num.clear();
        let mult = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            _ => return Err(format!("unknown unit '{c}' in '{s}' (use s, m, h or d)")),
        };
        total = total.saturating_add(n.saturating_mul(mult));
    }
    if !num.is_empty() {
        return Err(format!("'{s}' needs a unit (s, m, h or d)"));
    }
    if total == 0 {
        return Err(format!("'{s}' must be longer than zero"));
    }
    Ok(Duration::from_secs(total))
}

fn parse_field(field: &str, min: u32, max: u32, names: &[&str]) -> Result<(u64, bool), String> {
    let value = |s: &str| -> Result<u32, String> {
        let lower = s.to_ascii_lowercase();
        if let Some(i) = names.iter().position(|n| *n == lower) {
            return Ok(i as u32 + if names.len() == 12 { 1 } else { 0 });
        }
        s.parse::<u32>()
            .map_err(|_| format!("'{s}' is not a number"))
    };
    let mut bits = 0u64;
    let any = field == "*";
    for item in field.split(',') {
        let (range, step) = match item.split_once('/') {
            Some((r, s)) => (
                r,
                s.parse::<u32>()
                    .ok()
                    .filter(|s| *s > 0)
                    .ok_or_else(|| format!("bad step in '{item}'"))?,
            ),
            None => (item, 1),
        };
        let (lo, hi) = if range == "*" {
            (min, max)
        } else if let Some((a, b)) = range.split_once('-') {
            (value(a)?, value(b)?)
        } else {
            let v = value(range)?;
            (v, if item.contains('/') { max } else { v })
        };
        if lo < min || hi > max || lo > hi {
            return Err(format!("'{item}' is outside {min}-{max}"));
        }
        let mut v = lo;
        while v <= hi {
            bits |= 1 << v;
            v += step;
        }
    }
    Ok((bits, any))
}

impl FromStr for Cron {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let fields: Vec<&str> = s.split_whitespace().collect();
        let [m, h, dom, mon, dow] = fields.as_slice() else {
            return Err(format!(
                "'{s}' is not a cron expression: give five fields (minute hour day-of-month month day-of-week)"
            ));
        };
        let ctx = |what: &str, e: String| format!("cron '{s}', {what}: {e}");
        let (minutes, _) = parse_field(m, 0, 59, &[]).map_err(|e| ctx("minute", e))?;
        let (hours, _) = parse_field(h, 0, 23, &[]).map_err(|e| ctx("hour", e))?;
        let (days, days_any) = parse_field(dom, 1, 31, &[]).map_err(|e| ctx("day of month", e))?;
        let (months, _) = parse_field(mon, 1, 12, &MONTHS).map_err(|e| ctx("month", e))?;
        let (mut weekdays, weekdays_any) =
            parse_field(dow, 0, 7, &DAYS).map_err(|e| ctx("day of week", e))?;
        if weekdays & (1 << 7) != 0 {
            weekdays |= 1;
        }
        Ok(Cron {
            text: fields.join(" "),
            minutes,
            hours,
            days,
            months,
            weekdays,
            days_any,
            weekdays_any,
        })
    }
}

impl Cron {
    fn day_matches(&self, d: NaiveDate) -> bool {
        let dom = self.days & (1 << d.day()) != 0;
        let dow = self.weekdays & (1 << d.weekday().num_days_from_sunday()) != 0;
        match (self.days_any, self.weekdays_any) {
            (true, true) => true,
            (false, true) => dom,
            (true, false) => dow,
            (false, false) => dom || dow,
        }
    }

    /// The first matching minute strictly after `t`.
    fn next_after(&self, t: NaiveDateTime) -> Option<NaiveDateTime> {
        let mut c = t.with_second(0)?.with_nanosecond(0)? + chrono::Duration::minutes(1);
        // Five years of skipping covers every satisfiable expression
        // (29 February included).
        let limit = t + chrono::Duration::days(366 * 5);
        while c <= limit {
            if self.months & (1 << c.month()) == 0 {
                let (y, m) = if c.month() == 12 {
                    (c.year() + 1, 1)
                } else {
                    (c.year(), c.month() + 1)
                };
                c = NaiveDate::from_ymd_opt(y, m, 1)?.and_hms_opt(0, 0, 0)?;
                continue;
            }
            if !self.day_matches(c.date()) {
                c = c.date().succ_opt()?.and_hms_opt(0, 0, 0)?;
                continue;
            }
            if self.hours & (1 << c.hour()) == 0 {
                c = c.with_minute(0)? + chrono::Duration::hours(1);
                continue;
            }
            if self.minutes & (1 << c.minute()) == 0 {
                c += chrono::Duration::minutes(1);
                continue;
            }
            return Some(c);
        }
        None
    }
}

impl FromStr for Schedule {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let t = s.trim();
        let cron = |e: &str| e.parse::<Cron>().map(|c| Self::Cron(Box::new(c)));
        match t {
            "@hourly" => cron("0 * * * *"),
            "@daily" | "@midnight" => cron("0 0 * * *"),
            "@weekly" => cron("0 0 * * 0"),
            "@monthly" => cron("0 0 1 * *"),
            _ => {
                if let Some(d) = t.strip_prefix("@every") {
                    return parse_duration(d).map(Self::Every);
                }
                if t.starts_with('@') {
                    return Err(format!(
                        "unknown schedule '{t}': use @every <duration>, @hourly, @daily, @weekly, @monthly or a cron expression"
                    ));
                }
                cron(t)
            }
        }
    }
}

impl Schedule {
    /// The first run strictly after `after_ms` (ms since epoch).
    pub fn next_after(&self, after_ms: i64) -> Option<i64> {
        match self {
            Self::Every(d) => {
                let step = i64::try_from(d.as_millis()).ok()?.max(1);
                Some((after_ms.div_euclid(step) + 1) * step)
            }
            Self::Cron(c) => {
                let t = chrono::DateTime::from_timestamp_millis(after_ms)?.naive_utc();
                c.next_after(t).map(|n| n.and_utc().timestamp_millis())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn ms(s: &str) -> i64 {
        NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M")
            .unwrap()
            .and_utc()
            .timestamp_millis()
    }

    fn next(expr: &str, after: &str) -> String {
        let s: Schedule = expr.parse().unwrap();
        let n = s.next_after(ms(after)).unwrap();
        chrono::DateTime::from_timestamp_millis(n)
            .unwrap()
            .format("%Y-%m-%d %H:%M")
            .to_string()
    }

    #[test]
    fn cron_expressions() {
        assert_eq!(next("17 3 * * *", "2026-12-01 03:16"), "2026-12-01 03:17");
        assert_eq!(next("17 3 * * *", "2026-12-01 03:17"), "2026-12-02 03:17");
        assert_eq!(next("*/15 * * * *", "2026-12-01 10:01"), "2026-12-01 10:15");
        assert_eq!(next("0 0 1 * *", "2026-12-15 00:00"), "2027-01-01 00:00");
        assert_eq!(
            next("0 12 * * mon-fri", "2026-12-05 13:00"),
            "2026-12-07 12:00"
        ); // Sat -> Mon
        assert_eq!(next("0 0 29 feb *", "2026-03-01 00:00"), "2028-02-29 00:00");
        // Both day fields restricted: either matches (the 13th, or a Friday).
        assert_eq!(next("0 0 13 * 5", "2026-12-01 00:00"), "2026-12-04 00:00");
        assert_eq!(next("0 0 * * 7", "2026-12-01 00:00"), "2026-12-06 00:00"); // 7 = Sunday
        assert_eq!(next("@daily", "2026-12-01 10:00"), "2026-12-02 00:00");
        assert_eq!(next("@weekly", "2026-12-01 10:00"), "2026-12-06 00:00");
        assert_eq!(next("@monthly", "2026-12-01 10:00"), "2027-01-01 00:00");
        assert_eq!(next("@hourly", "2026-12-01 10:30"), "2026-12-01 11:00");
        assert_eq!(
            next("0,30 8-9 * * *", "2026-12-01 08:40"),
            "2026-12-01 09:00"
        );
    }

    #[test]
    fn intervals_align_to_the_epoch() {
        let s: Schedule = "@every 6h".parse().unwrap();
        assert_eq!(s, Schedule::Every(Duration::from_secs(6 * 3600)));
        assert_eq!(next("@every 6h", "2026-12-01 10:00"), "2026-12-01 12:00");
        assert_eq!(next("@every 1h30m", "2026-12-01 00:00"), "2026-12-01 01:30");
        assert_eq!(parse_duration("90s").unwrap(), Duration::from_secs(90));
    }

    #[test]
    fn bad_schedules_say_what_is_wrong() {
        for (bad, why) in [
            ("0 0 * *", "five fields"),
            ("61 * * * *", "minute"),
            ("0 0 31 13 *", "month"),
            ("* * * * mun", "day of week"),
            ("@yearly", "unknown schedule"),
            ("@every 10", "unit"),
            ("@every 0s", "longer than zero"),
            ("0 0 30 feb *", "never"),
        ] {
            let r = bad.parse::<Schedule>();
            let msg = match r {
                Err(e) => e,
                Ok(s) if s.next_after(0).is_none() => "never runs".to_string(),
                Ok(s) => panic!("{bad} parsed as {s:?}"),
            };
            assert!(msg.contains(why), "{bad}: {msg}");
        }
    }
}
