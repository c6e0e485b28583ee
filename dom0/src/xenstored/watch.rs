//! Watches: what a connection asked to be told about, and which changes match.
//!
//! A watch on `wpath` matches a change of `wpath` or of anything below it (xenstore.txt).
//! Removal is reported the way Xen's C xenstored reports it: the removed subtree's root is a
//! [`Scope::Subtree`] change (it matches watches on the root and on its ancestors), and each
//! removed descendant is a [`Scope::Exact`] change (it matches only a watch on exactly that
//! node), so a watch below a removed node fires with its own path. The event path is given
//! as the watcher spelled it: relative for a watch registered with a relative path.
//!
//! Whether a connection may see a change is decided when the event is sent, with Xen's rule:
//! it may read the node's permissions before the change, or the node or its parent after it.
//! Special events (`@introduceDomain`, `@releaseDomain`) go to watches on exactly that name,
//! if the connection may read the special node's permissions (everyone may read
//! `@releaseDomain` by default; only the privileged domain `@introduceDomain`).

use alloc::string::String;
use alloc::vec::Vec;

use super::path;
use super::perms::Perms;
use super::quota::SMALL_OVERHEAD;

/// How a change matches watches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Scope {
    /// Matches watches on the changed path and on its ancestors.
    Subtree,
    /// Matches only a watch on exactly the changed path.
    Exact,
}

/// One committed (or to-be-committed) modification, as watches see it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Change {
    pub path: String,
    pub scope: Scope,
    /// The node's permissions before the change, if it existed: a domain losing access by
    /// this very change (or seeing its node removed) still hears about it.
    pub perms_before: Option<Perms>,
}

impl Change {
    pub fn new(path: &str, scope: Scope, perms_before: Option<Perms>) -> Change {
        Change { path: String::from(path), scope, perms_before }
    }

    /// Folds a later change of the same path into this one (transactions report each path
    /// once). The first `perms_before` is the one from before the transaction; a subtree
    /// scope wins over an exact one.
    pub fn merge(&mut self, later: Change) {
        if later.scope == Scope::Subtree {
            self.scope = Scope::Subtree;
        }
        if self.perms_before.is_none() {
            self.perms_before = later.perms_before;
        }
    }

    /// Memory a queued change holds.
    pub fn bytes(&self) -> usize {
        self.path.len() + self.perms_before.as_ref().map_or(0, Perms::size) + SMALL_OVERHEAD
    }
}

/// A registered watch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Watch {
    /// Absolute path or special name.
    pub path: String,
    /// The client's token, echoed in every event (any bytes but nul).
    pub token: Vec<u8>,
    /// Bytes of `path` to strip in events (non-zero for relative watches).
    pub rel_prefix: usize,
}

impl Watch {
    /// True if `change` should fire this watch.
    pub fn matches(&self, change: &Change) -> bool {
        match change.scope {
            Scope::Subtree => path::is_within(&change.path, &self.path),
            Scope::Exact => change.path == self.path,
        }
    }

    /// The event path for a change at `changed`, spelled as the watch was.
    pub fn event_path<'a>(&self, changed: &'a str) -> &'a str {
        changed.get(self.rel_prefix..).unwrap_or(changed)
    }

    /// Memory the watch holds (charged to its connection's domain).
    pub fn bytes(&self) -> usize {
        self.path.len() + self.token.len() + SMALL_OVERHEAD
    }
}

/// The payload of a WATCH_EVENT: `<path>\0<token>\0`.
pub(crate) fn event_payload(event_path: &str, token: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(event_path.len() + token.len() + 2);
    out.extend_from_slice(event_path.as_bytes());
    out.push(0);
    out.extend_from_slice(token);
    out.push(0);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn watch(p: &str, rel_prefix: usize) -> Watch {
        Watch { path: String::from(p), token: b"tok".to_vec(), rel_prefix }
    }

    #[test]
    fn subtree_changes_match_ancestors_exact_only_self() {
        let w = watch("/a/b", 0);
        assert!(w.matches(&Change::new("/a/b", Scope::Subtree, None)));
        assert!(w.matches(&Change::new("/a/b/c", Scope::Subtree, None)));
        assert!(!w.matches(&Change::new("/a", Scope::Subtree, None)));
        assert!(!w.matches(&Change::new("/a/bc", Scope::Subtree, None)));
        assert!(w.matches(&Change::new("/a/b", Scope::Exact, None)));
        assert!(!w.matches(&Change::new("/a/b/c", Scope::Exact, None)));
        assert!(watch("/", 0).matches(&Change::new("/x", Scope::Subtree, None)));
    }

    #[test]
    fn relative_watches_get_relative_paths() {
        let w = watch("/local/domain/3/device", "/local/domain/3/".len());
        assert_eq!(w.event_path("/local/domain/3/device/vbd"), "device/vbd");
        assert_eq!(event_payload("device", b"t"), b"device\0t\0");
    }
}
