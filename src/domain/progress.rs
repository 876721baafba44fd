//! Progress of a running job: readings of its processed count, and the ETA
//! they give.

use chrono::{DateTime, Utc};

/// When the job's processed record count last moved (for `stalled`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    pub processed: i64,
    pub since: DateTime<Utc>,
}

/// The longest estimate given: past it, a rate is too slow to mean anything.
pub const ETA_HORIZON_DAYS: i64 = 366;

/// When a job with `total` records ends if it keeps the rate between two
/// readings of its processed count: `None` unless the count moved forwards
/// between them, time passed, and records remain.
pub fn eta(from: Progress, to: Progress, total: i64) -> Option<DateTime<Utc>> {
    let moved = to.processed.checked_sub(from.processed)?;
    let elapsed_ms = (to.since - from.since).num_milliseconds();
    let remaining = total.checked_sub(to.processed)?;
    if moved <= 0 || elapsed_ms <= 0 || remaining <= 0 {
        return None;
    }
    let left_ms = i128::from(remaining) * i128::from(elapsed_ms) / i128::from(moved);
    let horizon = i128::from(ETA_HORIZON_DAYS * 86_400_000);
    if left_ms > horizon {
        return None;
    }
    Some(to.since + chrono::Duration::milliseconds(left_ms as i64))
}

/// "about 2 h 10 min left at the current rate": the time from `now` to `eta`,
/// to the minute.
pub fn eta_text(eta: DateTime<Utc>, now: DateTime<Utc>) -> String {
    let minutes = ((eta - now).num_seconds() + 30).div_euclid(60);
    let (h, m) = (minutes / 60, minutes % 60);
    match (h, m) {
        _ if minutes < 1 => "less than a minute left at the current rate".to_owned(),
        (0, m) => format!("about {m} min left at the current rate"),
        (h, 0) => format!("about {h} h left at the current rate"),
        (h, m) => format!("about {h} h {m} min left at the current rate"),
    }
}

#[cfg(test)]
mod tests {
    use crate::domain::fixtures::*;
    use crate::domain::*;

    #[test]
    fn eta_should_extend_the_rate_between_two_readings_to_the_records_left() {
        // 100 records in 10 min; 300 left: 30 min after the second reading.
        assert_eq!(eta(reading(100, 0), reading(200, 10), 500), Some(at(40)));
        // A fraction of a minute is kept to the millisecond.
        assert_eq!(
            eta(reading(0, 0), reading(3, 1), 4),
            Some(at(1) + chrono::Duration::seconds(20))
        );
    }

    #[test]
    fn eta_should_be_absent_without_two_readings_of_a_moving_count() {
        assert_eq!(
            eta(reading(200, 0), reading(200, 10), 500),
            None,
            "count stood still"
        );
        assert_eq!(
            eta(reading(300, 0), reading(200, 10), 500),
            None,
            "count went back"
        );
        assert_eq!(
            eta(reading(100, 10), reading(200, 10), 500),
            None,
            "no time passed"
        );
        assert_eq!(
            eta(reading(100, 20), reading(200, 10), 500),
            None,
            "readings out of order"
        );
        assert_eq!(
            eta(reading(100, 0), reading(500, 10), 500),
            None,
            "nothing left"
        );
        assert_eq!(
            eta(reading(100, 0), reading(600, 10), 500),
            None,
            "more than the total"
        );
        // One record a year, a million left: no estimate past the horizon.
        assert_eq!(eta(reading(0, 0), reading(1, 525_600), 1_000_000), None);
        assert_eq!(eta(reading(i64::MIN, 0), reading(i64::MAX, 1), 5), None);
    }

    #[test]
    fn eta_text_should_read_in_hours_and_minutes() {
        assert_eq!(
            eta_text(at(130), at(0)),
            "about 2 h 10 min left at the current rate"
        );
        assert_eq!(
            eta_text(at(45), at(0)),
            "about 45 min left at the current rate"
        );
        assert_eq!(
            eta_text(at(180), at(0)),
            "about 3 h left at the current rate"
        );
        assert_eq!(
            eta_text(at(0) + chrono::Duration::seconds(20), at(0)),
            "less than a minute left at the current rate"
        );
        assert_eq!(
            eta_text(at(0), at(5)),
            "less than a minute left at the current rate",
            "an estimate already passed"
        );
    }
}
