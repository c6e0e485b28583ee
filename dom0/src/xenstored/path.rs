//! XenStore path syntax: validation, the relative-to-home rule, and parent/child arithmetic.
//!
//! Every path arrives from a domain and is checked here before anything else looks at it
//! (docs/misc/xenstore.txt): only `[A-Za-z0-9-/_@]`, no empty path, no `//`, no trailing `/`
//! except the root, at most `XENSTORE_ABS_PATH_MAX` bytes, and for unprivileged callers at most
//! the "path-max" quota below `/local/domain/<id>/` (Xen's `canonicalize`). A path not starting
//! with `/` is relative to the caller's home `/local/domain/<domid>`. Paths starting with `@`
//! name the special watch targets (`@introduceDomain`, `@releaseDomain`) and are accepted only
//! where Xen accepts them (WATCH, UNWATCH, GET_PERMS, SET_PERMS). After validation every path
//! is plain ASCII, so byte offsets used below are always character boundaries.

use alloc::format;
use alloc::string::String;
use hypercall_abi::DomId;
use hypercall_abi::errno::Errno;

use super::wire::ABS_PATH_MAX;

/// A validated path in absolute form, remembering how the caller spelled it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Canonical {
    /// The absolute path (or `@special` name).
    pub abs: String,
    /// For a relative input: the length of the home prefix plus its `/`, so the caller's own
    /// spelling is `abs[rel_prefix..]`. 0 for absolute input.
    pub rel_prefix: usize,
}

/// The home directory of a domain, which relative paths are resolved against.
pub(crate) fn home_path(dom: DomId) -> String {
    format!("/local/domain/{}", dom.0)
}

fn valid_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'/' | b'_' | b'@')
}

/// Validates `input` (one nul-free argument from a request) and makes it absolute.
///
/// `path_quota` is the caller's "path-max" quota, `None` for the privileged domain.
pub(crate) fn canonicalize(
    input: &[u8],
    home: &str,
    allow_special: bool,
    path_quota: Option<usize>,
) -> Result<Canonical, Errno> {
    if !input.iter().copied().all(valid_byte) {
        return Err(Errno::EINVAL);
    }
    if input.first() == Some(&b'@') && !allow_special {
        return Err(Errno::EINVAL);
    }
    // All bytes are ASCII now, so this cannot fail; map it to EINVAL rather than panic anyway.
    let text = core::str::from_utf8(input).map_err(|_| Errno::EINVAL)?;
    // Refuse before allocating: a 4 KiB argument can never become a legal path.
    if text.len() > ABS_PATH_MAX {
        return Err(Errno::EINVAL);
    }
    let (abs, rel_prefix) = match input.first() {
        Some(b'/' | b'@') => (String::from(text), 0),
        _ => (format!("{home}/{text}"), home.len() + 1),
    };
    let bad_slashes = (abs.ends_with('/') && abs != "/") || abs.contains("//");
    if bad_slashes || abs.len() > ABS_PATH_MAX {
        return Err(Errno::EINVAL);
    }
    if let Some(limit) = path_quota
        && abs.len() - local_offset(&abs) > limit
    {
        return Err(Errno::EINVAL);
    }
    Ok(Canonical { abs, rel_prefix })
}

/// Offset just past `/local/domain/<id>/` if `path` lies below some domain's home, else 0: the
/// path-length quota only counts what a domain adds below a home (Xen does the same, so that
/// deep homes do not eat into the guest's budget).
fn local_offset(path: &str) -> usize {
    const PREFIX: &str = "/local/domain/";
    let Some(rest) = path.strip_prefix(PREFIX) else { return 0 };
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    if (1..=5).contains(&digits) && rest.as_bytes().get(digits) == Some(&b'/') {
        PREFIX.len() + digits + 1
    } else {
        0
    }
}

/// The parent of a path: `None` for the root, `/` for top-level nodes and for `@` names.
pub(crate) fn parent(path: &str) -> Option<&str> {
    if path == "/" {
        return None;
    }
    match path.rfind('/') {
        Some(0) | None => Some("/"),
        Some(i) => Some(&path[..i]),
    }
}

/// The last component of a path (the whole name for `@` names).
pub(crate) fn basename(path: &str) -> &str {
    path.rfind('/').map_or(path, |i| &path[i + 1..])
}

/// The path of child `name` of `parent`.
pub(crate) fn child(parent: &str, name: &str) -> String {
    if parent == "/" { format!("/{name}") } else { format!("{parent}/{name}") }
}

/// True if `path` is `ancestor` or lies below it (xenstore.txt's "child" relation).
pub(crate) fn is_within(path: &str, ancestor: &str) -> bool {
    if ancestor == "/" {
        return path.starts_with('/');
    }
    match path.strip_prefix(ancestor) {
        Some(rest) => rest.is_empty() || rest.starts_with('/'),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOME: &str = "/local/domain/3";

    fn canon(p: &str) -> Result<String, Errno> {
        canonicalize(p.as_bytes(), HOME, false, Some(2048)).map(|c| c.abs)
    }

    #[test]
    fn relative_paths_resolve_against_home() {
        let c = canonicalize(b"device/vif", HOME, false, None).unwrap();
        assert_eq!(c.abs, "/local/domain/3/device/vif");
        assert_eq!(&c.abs[c.rel_prefix..], "device/vif");
        assert_eq!(canon("/tool").unwrap(), "/tool");
        assert_eq!(canon("/").unwrap(), "/");
    }

    #[test]
    fn malformed_paths_are_einval() {
        for bad in ["", "/a/", "a//b", "/a b", "/a.b", "/a\u{e9}", "@x", "//"] {
            assert_eq!(canon(bad), Err(Errno::EINVAL), "{bad:?}");
        }
        assert!(canonicalize(b"@releaseDomain", HOME, true, None).is_ok());
    }

    #[test]
    fn length_limits() {
        let long = format!("/{}", "a".repeat(ABS_PATH_MAX));
        assert_eq!(canonicalize(long.as_bytes(), HOME, false, None), Err(Errno::EINVAL));
        // Quota counts only what lies below the home.
        let below = format!("{HOME}/{}", "b".repeat(2048));
        assert!(canonicalize(below.as_bytes(), HOME, false, Some(2048)).is_ok());
        let over = format!("{HOME}/{}", "b".repeat(2049));
        assert_eq!(canonicalize(over.as_bytes(), HOME, false, Some(2048)), Err(Errno::EINVAL));
        assert!(canonicalize(over.as_bytes(), HOME, false, None).is_ok());
    }

    #[test]
    fn parent_and_children() {
        assert_eq!(parent("/"), None);
        assert_eq!(parent("/a"), Some("/"));
        assert_eq!(parent("/a/b"), Some("/a"));
        assert_eq!(parent("@releaseDomain"), Some("/"));
        assert_eq!(basename("/a/b"), "b");
        assert_eq!(child("/", "a"), "/a");
        assert_eq!(child("/a", "b"), "/a/b");
        assert!(is_within("/a/b", "/a"));
        assert!(is_within("/a", "/a"));
        assert!(!is_within("/ab", "/a"));
        assert!(is_within("/x", "/"));
        assert!(!is_within("@releaseDomain", "/"));
    }
}
