//! Plan quotas as rules: what a plan allows, the calendar month (UTC) a
//! message counts in, and the refusal when there is no room. The counting is
//! in `store::usage`.

use chrono::{DateTime, Datelike, TimeZone, Utc};

use crate::error::DomainError;

/// What a plan allows (also a plan's configuration, `[plans.<name>]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
pub struct Plan {
    pub messages_per_month: u64,
    pub bots: u64,
    pub sources: u64,
}

/// Countable resources of a plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quota {
    Bots,
    Sources,
}

impl Plan {
    /// `QUOTA_EXCEEDED` unless one more chat message fits in the month of
    /// `at`, when `used` are counted.
    pub fn room_for_message(&self, used: u64, at: DateTime<Utc>) -> Result<(), DomainError> {
        if used < self.messages_per_month {
            return Ok(());
        }
        Err(self.messages_used_up(at))
    }

    /// Why a chat message in the month of `at` is refused.
    pub fn messages_used_up(&self, at: DateTime<Utc>) -> DomainError {
        DomainError::QuotaExceeded(format!(
            "the plan's {} chat messages for {} are used up; the quota renews on {}",
            self.messages_per_month,
            period(at),
            next_period_start(at).format("%Y-%m-%d")
        ))
    }

    /// `QUOTA_EXCEEDED` unless the organization, with `used` of them, may have
    /// one more bot (or source).
    pub fn room_for(&self, what: Quota, used: u64) -> Result<(), DomainError> {
        let (limit, noun) = match what {
            Quota::Bots => (self.bots, "bots"),
            Quota::Sources => (self.sources, "sources"),
        };
        if used < limit {
            return Ok(());
        }
        Err(DomainError::QuotaExceeded(format!(
            "the plan allows {limit} {noun} per organization; delete one or change the plan"
        )))
    }
}

/// The month a time falls in, `YYYY-MM`.
pub fn period(at: DateTime<Utc>) -> String {
    format!("{:04}-{:02}", at.year(), at.month())
}

/// The first instant of the next month.
pub fn next_period_start(at: DateTime<Utc>) -> DateTime<Utc> {
    let (year, month) = if at.month() == 12 {
        (at.year() + 1, 1)
    } else {
        (at.year(), at.month() + 1)
    };
    Utc.with_ymd_and_hms(year, month, 1, 0, 0, 0).single().unwrap_or(at)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_plan_leaves_room_or_says_why_not() {
        let plan = Plan {
            messages_per_month: 100,
            bots: 2,
            sources: 0,
        };
        let at = Utc.with_ymd_and_hms(2026, 12, 31, 23, 0, 0).unwrap();
        assert!(plan.room_for_message(99, at).is_ok());
        let refused = plan.room_for_message(100, at).unwrap_err();
        assert_eq!(refused.code(), crate::ErrorCode::QuotaExceeded);
        assert_eq!(
            refused.to_string(),
            "the plan's 100 chat messages for 2026-12 are used up; the quota renews on 2027-01-01"
        );
        assert!(plan.room_for(Quota::Bots, 1).is_ok());
        assert!(plan.room_for(Quota::Bots, 2).is_err());
        let none = plan.room_for(Quota::Sources, 0).unwrap_err();
        assert_eq!(
            none.to_string(),
            "the plan allows 0 sources per organization; delete one or change the plan"
        );
    }

    #[test]
    fn periods_and_their_ends() {
        let at = Utc.with_ymd_and_hms(2026, 12, 31, 23, 59, 59).unwrap();
        assert_eq!(period(at), "2026-12");
        assert_eq!(
            next_period_start(at),
            Utc.with_ymd_and_hms(2027, 1, 1, 0, 0, 0).unwrap()
        );
        let at = Utc.with_ymd_and_hms(2027, 1, 15, 8, 0, 0).unwrap();
        assert_eq!(period(at), "2027-01");
        assert_eq!(
            next_period_start(at),
            Utc.with_ymd_and_hms(2027, 2, 1, 0, 0, 0).unwrap()
        );
    }
}
