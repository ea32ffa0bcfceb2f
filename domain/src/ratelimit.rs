//! Rate limits as GCRA (the generic cell rate algorithm): a limit of `n`
//! requests per `period` lets a burst of `n` through, then one request every
//! `period / n`. The only state per key is the "theoretical arrival time";
//! the Redis backend runs the same arithmetic in a script.

/// A limit: `limit` requests per `period_ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    pub limit: u32,
    pub period_ms: u64,
}

impl Rate {
    pub fn per_minute(limit: u32) -> Rate {
        Rate {
            limit,
            period_ms: 60_000,
        }
    }

    /// Time between two requests at the sustained rate.
    pub fn emission_ms(&self) -> f64 {
        self.period_ms as f64 / f64::from(self.limit.max(1))
    }
}

/// What one check decided, with what the `X-RateLimit-*` headers say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    pub limit: u32,
    /// Requests still allowed right now.
    pub remaining: u32,
    /// Milliseconds until the full burst is available again.
    pub reset_ms: u64,
    /// Milliseconds until a refused request may be retried (0 when allowed).
    pub retry_after_ms: u64,
}

/// One GCRA step: given the stored arrival time (`None`: a fresh key) and
/// the current time, decides and returns the arrival time to store (unchanged
/// when refused).
pub fn gcra(rate: Rate, stored_tat_ms: Option<f64>, now_ms: f64) -> (Decision, f64) {
    let t = rate.emission_ms();
    let burst = t * f64::from(rate.limit);
    let tat = stored_tat_ms.unwrap_or(now_ms).max(now_ms);
    let new_tat = tat + t;
    let allow_at = new_tat - burst;
    if now_ms < allow_at {
        let decision = Decision {
            allowed: false,
            limit: rate.limit,
            remaining: 0,
            reset_ms: (tat - now_ms).ceil() as u64,
            retry_after_ms: (allow_at - now_ms).ceil() as u64,
        };
        return (decision, tat);
    }
    let remaining = ((now_ms - allow_at) / t).floor().max(0.0) as u32;
    let decision = Decision {
        allowed: true,
        limit: rate.limit,
        remaining: remaining.min(rate.limit),
        reset_ms: (new_tat - now_ms).ceil() as u64,
        retry_after_ms: 0,
    };
    (decision, new_tat)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_of_exactly_the_limit_then_one_per_interval() {
        let rate = Rate {
            limit: 5,
            period_ms: 1000,
        };
        let mut tat = None;
        let mut allowed = 0;
        let mut last = None;
        for _ in 0..8 {
            let (d, next) = gcra(rate, tat, 0.0);
            tat = Some(next);
            allowed += u32::from(d.allowed);
            last = Some(d);
        }
        assert_eq!(allowed, 5);
        let refused = last.unwrap();
        assert!(!refused.allowed);
        assert_eq!(refused.retry_after_ms, 200, "one emission interval");
        assert_eq!(refused.reset_ms, 1000, "the whole burst back after a period");
        // One interval later, one more request passes, and only one.
        let (d, next) = gcra(rate, tat, 200.0);
        assert!(d.allowed);
        assert_eq!(d.remaining, 0);
        let (d, _) = gcra(rate, Some(next), 200.0);
        assert!(!d.allowed);
        // After a full period the whole burst is back.
        let (d, _) = gcra(rate, Some(next), 1200.0);
        assert!(d.allowed);
        assert_eq!(d.remaining, 4);
    }

    #[test]
    fn remaining_counts_down() {
        let rate = Rate::per_minute(3);
        let (a, t) = gcra(rate, None, 0.0);
        let (b, t) = gcra(rate, Some(t), 0.0);
        let (c, _) = gcra(rate, Some(t), 0.0);
        assert_eq!((a.remaining, b.remaining, c.remaining), (2, 1, 0));
        assert!(a.allowed && b.allowed && c.allowed);
    }
}
