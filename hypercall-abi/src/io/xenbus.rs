//! Xenbus device states (`io/xenbus.h`). Each end of a split device writes its state to its
//! `state` node in XenStore as a decimal string (`"4"` for Connected) and watches the other's.
//!
//! Normal life: both start Initialising; the backend goes InitWait once it has read its
//! configuration; the frontend publishes its ring refs and event channel and goes Initialised
//! (or straight to Connected); the backend connects and goes Connected; the frontend goes
//! Connected. Teardown: Closing, then Closed, on either side.

/// A xenbus state (`XenbusState`).
#[repr(u32)]
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum XenbusState {
    /// Unknown or not yet written.
    Unknown = 0,
    /// Initialising.
    Initialising = 1,
    /// Finished early initialisation; waiting for the peer or hotplug scripts.
    InitWait = 2,
    /// Initialised; waiting for the peer to connect.
    Initialised = 3,
    /// Connected: the rings are live.
    Connected = 4,
    /// Being closed (error or unplug).
    Closing = 5,
    /// Closed.
    Closed = 6,
    /// Being reconfigured.
    Reconfiguring = 7,
    /// Reconfigured.
    Reconfigured = 8,
}

impl XenbusState {
    /// The state for a numeric value.
    #[must_use]
    pub const fn from_u32(v: u32) -> Option<Self> {
        use XenbusState::*;
        Some(match v {
            0 => Unknown,
            1 => Initialising,
            2 => InitWait,
            3 => Initialised,
            4 => Connected,
            5 => Closing,
            6 => Closed,
            7 => Reconfiguring,
            8 => Reconfigured,
            _ => return None,
        })
    }

    /// The decimal string written to XenStore (`"4"`).
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            XenbusState::Unknown => "0",
            XenbusState::Initialising => "1",
            XenbusState::InitWait => "2",
            XenbusState::Initialised => "3",
            XenbusState::Connected => "4",
            XenbusState::Closing => "5",
            XenbusState::Closed => "6",
            XenbusState::Reconfiguring => "7",
            XenbusState::Reconfigured => "8",
        }
    }

    /// Parse the XenStore value: decimal digits, optionally followed by a NUL and/or
    /// surrounded by ASCII whitespace.
    #[must_use]
    pub fn parse(s: &[u8]) -> Option<Self> {
        let s = s.split(|&b| b == 0).next()?.trim_ascii();
        if s.is_empty() || s.len() > 9 || !s.iter().all(u8::is_ascii_digit) {
            return None;
        }
        let v = s.iter().fold(0u32, |acc, &d| acc * 10 + u32::from(d - b'0'));
        Self::from_u32(v)
    }

    /// A human-readable name, for logs.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            XenbusState::Unknown => "Unknown",
            XenbusState::Initialising => "Initialising",
            XenbusState::InitWait => "InitWait",
            XenbusState::Initialised => "Initialised",
            XenbusState::Connected => "Connected",
            XenbusState::Closing => "Closing",
            XenbusState::Closed => "Closed",
            XenbusState::Reconfiguring => "Reconfiguring",
            XenbusState::Reconfigured => "Reconfigured",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        for v in 0..=8 {
            let s = XenbusState::from_u32(v).unwrap();
            assert_eq!(s as u32, v);
            assert_eq!(XenbusState::parse(s.as_str().as_bytes()), Some(s));
        }
        assert_eq!(XenbusState::from_u32(9), None);
    }

    #[test]
    fn parsing() {
        assert_eq!(XenbusState::parse(b"4\0"), Some(XenbusState::Connected));
        assert_eq!(XenbusState::parse(b" 6\n"), Some(XenbusState::Closed));
        assert_eq!(XenbusState::parse(b""), None);
        assert_eq!(XenbusState::parse(b"x"), None);
        assert_eq!(XenbusState::parse(b"-1"), None);
        assert_eq!(XenbusState::parse(b"99999999999"), None);
    }
}
