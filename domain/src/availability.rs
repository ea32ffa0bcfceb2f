//! When people answer: a bot's opening hours (an IANA time zone and weekly
//! spans), its hand-off settings, and members' availability.

use chrono::{DateTime, Datelike, Duration, NaiveTime, TimeZone, Utc, Weekday};
use serde::{Deserialize, Serialize};

use crate::error::{DomainError, FieldError};

/// How long a member's "online" or "away" lasts without a heartbeat.
pub const HEARTBEAT_SECS: i64 = 120;

pub const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

/// One opening on one weekday, `opens` before `closes` (`HH:MM`, local time).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpeningSpan {
    /// `mon` to `sun`.
    pub day: String,
    pub opens: String,
    pub closes: String,
}

/// Weekly opening hours in a time zone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BusinessHours {
    /// An IANA time zone, such as `Europe/Lisbon`.
    pub time_zone: String,
    pub spans: Vec<OpeningSpan>,
}

/// What happens when a visitor asks for a person.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HandoffSettings {
    /// Opening hours (`None`: people may answer at any time).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub business_hours: Option<BusinessHours>,
    /// What the bot says when nobody can answer now (`None`: the default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offline_message: Option<String>,
    /// Give each conversation handed to a person to an online member, in turn.
    #[serde(default)]
    pub auto_assign: bool,
    /// Open conversations a member may have before auto-assignment skips them (0: no cap).
    #[serde(default)]
    pub max_open_per_member: u32,
}

/// What the bot says when nobody can answer, unless set.
pub const DEFAULT_OFFLINE: &str =
    "Nobody from our team is available right now. Leave your email and we will get back to you";

fn weekday(day: &str) -> Option<Weekday> {
    Some(match day {
        "mon" => Weekday::Mon,
        "tue" => Weekday::Tue,
        "wed" => Weekday::Wed,
        "thu" => Weekday::Thu,
        "fri" => Weekday::Fri,
        "sat" => Weekday::Sat,
        "sun" => Weekday::Sun,
        _ => return None,
    })
}

fn time(t: &str) -> Option<NaiveTime> {
    if t.len() != 5 {
        return None;
    }
    NaiveTime::parse_from_str(t, "%H:%M").ok()
}

impl HandoffSettings {
    /// Every problem at once, as field errors.
    pub fn validate(&self) -> Result<(), DomainError> {
        let mut errors = Vec::new();
        let mut bad = |field: String, message: &str| {
            errors.push(FieldError {
                field,
                message: message.to_owned(),
            });
        };
        if let Some(hours) = &self.business_hours {
            if hours.time_zone.parse::<chrono_tz::Tz>().is_err() {
                bad(
                    "handoff.business_hours.time_zone".into(),
                    "must be an IANA time zone such as `Europe/Lisbon`",
                );
            }
            if hours.spans.len() > 28 {
                bad("handoff.business_hours.spans".into(), "at most 28 spans");
            }
            for (i, span) in hours.spans.iter().enumerate() {
                let at = |f: &str| format!("handoff.business_hours.spans[{i}].{f}");
                if weekday(&span.day).is_none() {
                    bad(at("day"), "must be `mon`, `tue`, `wed`, `thu`, `fri`, `sat` or `sun`");
                }
                match (time(&span.opens), time(&span.closes)) {
                    (Some(o), Some(c)) if o < c => {}
                    (Some(_), Some(_)) => bad(at("closes"), "must be after `opens` (split spans over midnight)"),
                    (None, _) => bad(at("opens"), "must be a time `HH:MM`"),
                    (_, None) => bad(at("closes"), "must be a time `HH:MM`"),
                }
            }
        }
        if let Some(m) = &self.offline_message
            && (m.trim().is_empty() || m.chars().count() > 1000)
        {
            bad("handoff.offline_message".into(), "must be 1 to 1000 characters");
        }
        if self.max_open_per_member > 1000 {
            bad("handoff.max_open_per_member".into(), "must be at most 1000");
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(DomainError::Validation(errors))
        }
    }
}

impl BusinessHours {
    fn zone(&self) -> chrono_tz::Tz {
        self.time_zone.parse().unwrap_or(chrono_tz::UTC)
    }

    /// Whether `at` falls within an opening span.
    pub fn open_at(&self, at: DateTime<Utc>) -> bool {
        let local = at.with_timezone(&self.zone());
        let (day, now) = (local.weekday(), local.time());
        self.spans.iter().any(|s| {
            weekday(&s.day) == Some(day)
                && matches!((time(&s.opens), time(&s.closes)), (Some(o), Some(c)) if o <= now && now < c)
        })
    }

    /// The next opening after `at` (now, when open), within two weeks.
    pub fn next_opening(&self, at: DateTime<Utc>) -> Option<DateTime<Utc>> {
        if self.open_at(at) {
            return Some(at);
        }
        let zone = self.zone();
        let today = at.with_timezone(&zone).date_naive();
        (0..15)
            .flat_map(|d| {
                let date = today + Duration::days(d);
                self.spans
                    .iter()
                    .filter(move |s| weekday(&s.day) == Some(date.weekday()))
                    .filter_map(move |s| {
                        let opens = date.and_time(time(&s.opens)?);
                        zone.from_local_datetime(&opens).earliest()
                    })
            })
            .map(|t| t.with_timezone(&Utc))
            .filter(|t| *t > at)
            .min()
    }
}

/// Their availability now: a status without a recent heartbeat is `offline`.
pub fn effective_availability(status: &str, updated_at: DateTime<Utc>, now: DateTime<Utc>) -> &'static str {
    if now - updated_at > Duration::seconds(HEARTBEAT_SECS) {
        return "offline";
    }
    match status {
        "online" => "online",
        "away" => "away",
        _ => "offline",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lisbon_weekdays() -> BusinessHours {
        BusinessHours {
            time_zone: "Europe/Lisbon".into(),
            spans: ["mon", "tue", "wed", "thu", "fri"]
                .iter()
                .map(|d| OpeningSpan {
                    day: (*d).into(),
                    opens: "09:00".into(),
                    closes: "17:30".into(),
                })
                .collect(),
        }
    }

    #[test]
    fn opening_hours_follow_the_time_zone() {
        let hours = lisbon_weekdays();
        // Friday 2026-12-04 16:00 UTC is 16:00 in Lisbon (winter): open.
        let friday = Utc.with_ymd_and_hms(2026, 12, 4, 16, 0, 0).unwrap();
        assert!(hours.open_at(friday));
        // 17:45 on Friday: closed until Monday 09:00 Lisbon time.
        let evening = Utc.with_ymd_and_hms(2026, 12, 4, 17, 45, 0).unwrap();
        assert!(!hours.open_at(evening));
        assert_eq!(
            hours.next_opening(evening),
            Some(Utc.with_ymd_and_hms(2026, 12, 7, 9, 0, 0).unwrap())
        );
        // In summer Lisbon is UTC+1: 08:30 UTC is 09:30 there.
        let summer = Utc.with_ymd_and_hms(2026, 7, 1, 8, 30, 0).unwrap();
        assert!(hours.open_at(summer));
        assert_eq!(hours.next_opening(friday), Some(friday), "open now");
    }

    #[test]
    fn settings_are_checked_field_by_field() {
        let mut hours = lisbon_weekdays();
        hours.time_zone = "Mars/Olympus".into();
        hours.spans[0].closes = "08:00".into();
        hours.spans[1].day = "funday".into();
        let settings = HandoffSettings {
            business_hours: Some(hours),
            offline_message: Some(" ".into()),
            ..HandoffSettings::default()
        };
        let DomainError::Validation(errors) = settings.validate().unwrap_err() else {
            panic!()
        };
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            vec![
                "handoff.business_hours.time_zone",
                "handoff.business_hours.spans[0].closes",
                "handoff.business_hours.spans[1].day",
                "handoff.offline_message"
            ]
        );
        assert!(HandoffSettings::default().validate().is_ok());
    }

    #[test]
    fn a_status_without_heartbeat_is_offline() {
        let now = Utc::now();
        assert_eq!(effective_availability("online", now, now), "online");
        assert_eq!(
            effective_availability("online", now - Duration::minutes(5), now),
            "offline"
        );
        assert_eq!(effective_availability("away", now, now), "away");
    }
}
