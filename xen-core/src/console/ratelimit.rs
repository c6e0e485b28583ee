//! A token bucket for messages a guest can trigger: `burst` messages at once, then one per
//! `interval_ns`. What is dropped is counted, so the next allowed line can say how many.

/// Token-bucket limiter.
#[derive(Clone, Debug)]
pub struct RateLimit {
    burst: u32,
    interval_ns: u64,
    tokens: u32,
    last_ns: u64,
    suppressed: u64,
}

impl RateLimit {
    pub const fn new(burst: u32, interval_ns: u64) -> Self {
        Self { burst, interval_ns, tokens: burst, last_ns: 0, suppressed: 0 }
    }

    /// Whether a message may go out at time `now_ns`.
    pub fn allow(&mut self, now_ns: u64) -> bool {
        let refill = now_ns.saturating_sub(self.last_ns) / self.interval_ns.max(1);
        if refill > 0 {
            self.tokens =
                self.burst.min(self.tokens.saturating_add(refill.min(u64::from(u32::MAX)) as u32));
            self.last_ns = now_ns;
        }
        if self.tokens > 0 {
            self.tokens -= 1;
            true
        } else {
            self.suppressed += 1;
            false
        }
    }

    /// Whether a message would be allowed at `now_ns` (nothing is taken).
    pub fn has_tokens(&self, now_ns: u64) -> bool {
        self.tokens > 0 || now_ns.saturating_sub(self.last_ns) >= self.interval_ns.max(1)
    }

    /// Messages dropped so far, and resets the count.
    pub fn take_suppressed(&mut self) -> u64 {
        core::mem::take(&mut self.suppressed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_steady_rate() {
        let mut r = RateLimit::new(3, 1000);
        assert!((0..3).all(|_| r.allow(0)));
        assert!(!r.allow(10));
        assert!(!r.allow(999));
        assert!(r.allow(1000));
        assert!(!r.allow(1001));
        assert_eq!(r.take_suppressed(), 3);
        assert!((0..3).all(|_| r.allow(1_000_000)));
        assert!(!r.allow(1_000_000));
        assert!(!r.has_tokens(1_000_500) && r.has_tokens(1_001_000), "peeking takes nothing");
    }
}
