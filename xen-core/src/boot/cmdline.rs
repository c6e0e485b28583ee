//! The hypervisor's command line (`-append` under QEMU): space-separated `key=value` or bare
//! `key` options, as Xen takes them. Unknown options are reported, never fatal.

/// One parsed option.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Opt<'a> {
    pub key: &'a str,
    pub value: Option<&'a str>,
}

/// Iterates the options of `line`.
pub fn options(line: &str) -> impl Iterator<Item = Opt<'_>> {
    line.split_ascii_whitespace().map(|word| match word.split_once('=') {
        Some((key, value)) => Opt { key, value: Some(value) },
        None => Opt { key: word, value: None },
    })
}

/// Parses a boolean the way Xen does: `1/yes/true/on/enable` and `0/no/false/off/disable`;
/// a bare key means true.
pub fn parse_bool(value: Option<&str>) -> Option<bool> {
    match value {
        None => Some(true),
        Some("1" | "yes" | "true" | "on" | "enable") => Some(true),
        Some("0" | "no" | "false" | "off" | "disable") => Some(false),
        Some(_) => None,
    }
}

/// Parses a size with an optional `K`, `M` or `G` suffix (bytes when none), e.g. `dom0_mem=256M`.
pub fn parse_size(value: &str) -> Option<u64> {
    let (digits, shift) = match value.as_bytes().last()? {
        b'k' | b'K' => (&value[..value.len() - 1], 10),
        b'm' | b'M' => (&value[..value.len() - 1], 20),
        b'g' | b'G' => (&value[..value.len() - 1], 30),
        b'b' | b'B' => (&value[..value.len() - 1], 0),
        _ => (value, 0),
    };
    let n: u64 = parse_u64(digits)?;
    n.checked_mul(1u64 << shift)
}

/// Parses decimal or `0x` hexadecimal.
pub fn parse_u64(s: &str) -> Option<u64> {
    match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => s.parse().ok(),
    }
}

/// Splits a module's command line into the image path (the first word, as QEMU passes it) and
/// the arguments for the guest.
pub fn split_module_cmdline(line: &str) -> (&str, &str) {
    let line = line.trim_start();
    match line.find(char::is_whitespace) {
        Some(i) => (&line[..i], line[i..].trim_start()),
        None => (line, ""),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_and_values() {
        let opts: Vec<_> = options(" loglvl=all  noreboot dom0_mem=256M ").collect();
        assert_eq!(opts[0], Opt { key: "loglvl", value: Some("all") });
        assert_eq!(opts[1], Opt { key: "noreboot", value: None });
        assert_eq!(parse_size(opts[2].value.unwrap()), Some(256 << 20));
    }

    #[test]
    fn sizes_and_bools() {
        assert_eq!(parse_size("4096"), Some(4096));
        assert_eq!(parse_size("2G"), Some(2 << 30));
        assert_eq!(parse_size("0x10K"), Some(16 << 10));
        assert_eq!(parse_size("G"), None);
        assert_eq!(parse_size("99999999999999999999G"), None);
        assert_eq!(parse_size("18014398509481984G"), None);
        assert_eq!(parse_bool(Some("off")), Some(false));
        assert_eq!(parse_bool(None), Some(true));
        assert_eq!(parse_bool(Some("maybe")), None);
    }

    #[test]
    fn module_cmdline() {
        assert_eq!(
            split_module_cmdline("target/images/dom0 a=1 b"),
            ("target/images/dom0", "a=1 b")
        );
        assert_eq!(split_module_cmdline("ramdisk"), ("ramdisk", ""));
    }
}
