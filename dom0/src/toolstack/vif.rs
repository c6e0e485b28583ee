//! A guest's network interface as its configuration describes it: one entry of `xl.cfg`'s
//! `vif = [ '...' ]` list, the subset of xl's `key=value,key=value` syntax this toolstack
//! reads, and the MAC address a vif gets when its entry names none.
//!
//! Keys: `mac=XX:XX:XX:XX:XX:XX` (a unicast address), `bridge=<name>` (only `xenbr0`, dom0's
//! one bridge, exists), `ip=<a.b.c.d>` (kept for the guest to read; nothing filters on it),
//! `type=vif`. An empty entry means every default. Anything else is an error, so a typo is
//! not silently ignored. Hardware-free, host-tested.

use alloc::format;
use alloc::string::String;

pub use hypercall_abi::io::netif::parse_mac;

/// Xen's organisationally unique identifier, which xl uses for the MACs it makes up.
pub const XEN_OUI: [u8; 3] = [0x00, 0x16, 0x3e];

/// One vif, parsed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VifSpec {
    /// The MAC the entry names, if any.
    pub mac: Option<[u8; 6]>,
    /// `ip=`, as written.
    pub ip: Option<String>,
}

/// `aa:bb:cc:dd:ee:ff`.
pub fn format_mac(m: &[u8; 6]) -> String {
    format!("{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}", m[0], m[1], m[2], m[3], m[4], m[5])
}

impl VifSpec {
    /// Parses one `vif` list entry.
    pub fn parse(entry: &str) -> Result<VifSpec, String> {
        let mut spec = VifSpec::default();
        for item in entry.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            let (k, v) =
                item.split_once('=').ok_or_else(|| format!("vif: '{item}' is no key=value"))?;
            match k.trim() {
                "mac" => {
                    let m = parse_mac(v.trim()).ok_or_else(|| format!("vif: bad mac '{v}'"))?;
                    if m[0] & 1 != 0 {
                        return Err(format!("vif: mac {v} is a multicast address"));
                    }
                    spec.mac = Some(m);
                }
                "bridge" if v.trim() == "xenbr0" => {}
                "bridge" => return Err(format!("vif: no bridge '{v}' (dom0 has xenbr0 only)")),
                "ip" => spec.ip = Some(v.trim().into()),
                "type" if v.trim() == "vif" => {}
                other => return Err(format!("vif: unknown key '{other}'")),
            }
        }
        Ok(spec)
    }

    /// The vif's MAC: the one configured, else one made up from the domain's name and the
    /// device number (Xen's OUI, the locally-administered bit clear as xl does), so a guest
    /// rebuilt after a crash keeps its address.
    pub fn mac_for(&self, domain: &str, devid: u32) -> [u8; 6] {
        if let Some(m) = self.mac {
            return m;
        }
        // FNV-1a: a stable spread of the name over the three free bytes.
        let mut h: u32 = 0x811c_9dc5;
        for b in domain.bytes().chain(devid.to_le_bytes()) {
            h = (h ^ u32::from(b)).wrapping_mul(0x0100_0193);
        }
        let t = h.to_le_bytes();
        [XEN_OUI[0], XEN_OUI[1], XEN_OUI[2], t[0] & 0x7f, t[1], t[2]]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_parse_as_xl_reads_them() {
        let s = VifSpec::parse("mac=00:16:3e:01:02:03, bridge=xenbr0,ip=10.0.2.15").unwrap();
        assert_eq!(s.mac, Some([0, 0x16, 0x3e, 1, 2, 3]));
        assert_eq!(s.ip.as_deref(), Some("10.0.2.15"));
        assert_eq!(VifSpec::parse("").unwrap(), VifSpec::default());
        assert_eq!(VifSpec::parse("type=vif").unwrap(), VifSpec::default());
    }

    #[test]
    fn mistakes_are_errors() {
        for bad in [
            "mac=00:16:3e:01:02",
            "mac=00:16:3e:01:02:03:04",
            "mac=zz:16:3e:01:02:03",
            "mac=01:16:3e:01:02:03",
            "bridge=br1",
            "model=e1000",
            "mac",
        ] {
            assert!(VifSpec::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn made_up_macs_are_stable_unicast_and_distinct() {
        let s = VifSpec::default();
        let a = s.mac_for("guest1", 0);
        assert_eq!(a, s.mac_for("guest1", 0));
        assert_ne!(a, s.mac_for("guest2", 0));
        assert_ne!(a, s.mac_for("guest1", 1));
        assert_eq!(&a[..3], &XEN_OUI);
        assert_eq!(a[0] & 1, 0);
        assert_eq!(format_mac(&a).len(), 17);
        let fixed = VifSpec::parse("mac=00:16:3e:aa:bb:cc").unwrap();
        assert_eq!(format_mac(&fixed.mac_for("x", 0)), "00:16:3e:aa:bb:cc");
    }
}
