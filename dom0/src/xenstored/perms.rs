//! Node permissions: Xen's list-of-entries model and the access check.
//!
//! A node carries one or more entries `<letter><domid>` (`n` none, `r` read, `w` write, `b`
//! both). The first entry names the owner, who always has full access, and its letter is the
//! access for every domain without an entry of its own. Later entries grant a specific domain
//! its access; the first one naming the caller wins. The privileged domain bypasses all checks,
//! and a domain that SET_TARGET made the "target" of another (a device-model stub domain) is
//! treated as that domain. `DOMID_ANY` in a later entry matches every domain. Only the owner
//! (or the privileged domain) may change a node's permissions, and only the privileged domain
//! may change its owner. (docs/misc/xenstore.txt, Xen's `perm_for_conn`.)

use alloc::vec::Vec;
use core::fmt::Write as _;

use hypercall_abi::DomId;
use hypercall_abi::errno::Errno;

use super::quota::PERM_ENTRY_BYTES;

/// Access granted by one permission entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// `n`: no access.
    None,
    /// `r`: read only.
    Read,
    /// `w`: write only.
    Write,
    /// `b`: read and write.
    Both,
}

impl Access {
    fn from_letter(letter: u8) -> Option<Access> {
        match letter {
            b'n' => Some(Access::None),
            b'r' => Some(Access::Read),
            b'w' => Some(Access::Write),
            b'b' => Some(Access::Both),
            _ => None,
        }
    }

    fn letter(self) -> char {
        match self {
            Access::None => 'n',
            Access::Read => 'r',
            Access::Write => 'w',
            Access::Both => 'b',
        }
    }

    fn can_read(self) -> bool {
        matches!(self, Access::Read | Access::Both)
    }

    fn can_write(self) -> bool {
        matches!(self, Access::Write | Access::Both)
    }
}

/// One permission entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PermEntry {
    /// The domain the entry is about (the owner, for the first entry).
    pub dom: DomId,
    /// What it may do.
    pub access: Access,
}

/// A node's permission list. Never empty: the first entry is the owner.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Perms {
    entries: Vec<PermEntry>,
}

/// Who is asking, as the permission check sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Caller {
    /// The requesting domain.
    pub dom: DomId,
    /// The domain this one acts for (SET_TARGET), if any.
    pub target: Option<DomId>,
    /// The privileged (control) domain: bypasses permissions and quotas.
    pub privileged: bool,
}

/// The rights a caller has on one node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Rights {
    pub read: bool,
    pub write: bool,
    /// May change the permissions (owner, target of the owner, or privileged).
    pub owner: bool,
}

/// What an operation needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Need {
    Read,
    Write,
    /// Write and ownership (SET_PERMS).
    Owner,
}

impl Rights {
    const ALL: Rights = Rights { read: true, write: true, owner: true };

    pub fn has(self, need: Need) -> bool {
        match need {
            Need::Read => self.read,
            Need::Write => self.write,
            Need::Owner => self.write && self.owner,
        }
    }

    /// True if any of the rights `need` asks for is present. Xen uses this looser test on
    /// the nearest existing ancestor to decide between reporting ENOENT and EACCES for a
    /// missing node, so that error codes do not reveal what the caller may not see.
    pub fn overlaps(self, need: Need) -> bool {
        match need {
            Need::Read => self.read,
            Need::Write | Need::Owner => self.write || self.owner,
        }
    }
}

impl Caller {
    fn is(&self, dom: DomId) -> bool {
        dom == self.dom || Some(dom) == self.target
    }
}

impl Perms {
    /// A list with only the owner entry.
    pub fn new(owner: DomId, others: Access) -> Perms {
        Perms { entries: alloc::vec![PermEntry { dom: owner, access: others }] }
    }

    /// This list plus an entry granting `dom` the access `access`.
    #[must_use]
    pub fn with(mut self, dom: DomId, access: Access) -> Perms {
        self.entries.push(PermEntry { dom, access });
        self
    }

    /// The owning domain.
    pub fn owner(&self) -> DomId {
        self.entries[0].dom
    }

    /// All entries, owner first.
    pub fn entries(&self) -> &[PermEntry] {
        &self.entries
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Always false (a list has at least the owner); here for clippy's `len_without_is_empty`.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Bytes charged for this list in a node's size.
    pub(crate) fn size(&self) -> usize {
        self.entries.len() * PERM_ENTRY_BYTES
    }

    pub(crate) fn set_owner(&mut self, dom: DomId) {
        self.entries[0].dom = dom;
    }

    /// Drops every non-owner entry naming `dom` (used when `dom` dies, so that a later domain
    /// reusing the id does not inherit its grants). Returns true if anything was removed.
    pub(crate) fn remove_grants_for(&mut self, dom: DomId) -> bool {
        let before = self.entries.len();
        let mut index = 0;
        self.entries.retain(|e| {
            index += 1;
            index == 1 || e.dom != dom
        });
        self.entries.len() != before
    }

    /// The caller's rights under this list.
    pub(crate) fn rights(&self, caller: &Caller) -> Rights {
        if caller.privileged || caller.is(self.owner()) {
            return Rights::ALL;
        }
        let access = self.entries[1..]
            .iter()
            .find(|e| caller.is(e.dom) || e.dom == DomId::ANY)
            .map_or(self.entries[0].access, |e| e.access);
        Rights { read: access.can_read(), write: access.can_write(), owner: false }
    }

    /// Parses the nul-terminated entries of a SET_PERMS request (everything after the path).
    /// `strings` yields each entry without its nul.
    pub(crate) fn parse<'a>(strings: impl Iterator<Item = &'a [u8]>) -> Result<Perms, Errno> {
        let mut entries = Vec::new();
        for s in strings {
            let (&letter, digits) = s.split_first().ok_or(Errno::EINVAL)?;
            let access = Access::from_letter(letter).ok_or(Errno::EINVAL)?;
            let dom = super::wire::parse_domid(digits)?;
            entries.push(PermEntry { dom, access });
        }
        if entries.is_empty() {
            return Err(Errno::EINVAL);
        }
        Ok(Perms { entries })
    }

    /// Appends the GET_PERMS form: each entry as `<letter><domid>\0`.
    pub(crate) fn encode(&self, out: &mut Vec<u8>) {
        let mut text = alloc::string::String::new();
        for e in &self.entries {
            // Writing into a String cannot fail.
            let _ = write!(text, "{}{}", e.access.letter(), e.dom.0);
            out.extend_from_slice(text.as_bytes());
            out.push(0);
            text.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caller(dom: u16) -> Caller {
        Caller { dom: DomId(dom), target: None, privileged: dom == 0 }
    }

    #[test]
    fn owner_and_default() {
        let p = Perms::new(DomId(3), Access::None).with(DomId(4), Access::Read);
        assert_eq!(p.rights(&caller(3)), Rights::ALL);
        assert_eq!(p.rights(&caller(0)), Rights::ALL);
        assert_eq!(p.rights(&caller(4)), Rights { read: true, write: false, owner: false });
        assert_eq!(p.rights(&caller(5)), Rights { read: false, write: false, owner: false });
        let q = Perms::new(DomId(3), Access::Both);
        assert!(q.rights(&caller(5)).has(Need::Write));
        assert!(!q.rights(&caller(5)).has(Need::Owner));
    }

    #[test]
    fn first_matching_entry_wins_and_any_matches_all() {
        let p = Perms::new(DomId(0), Access::None)
            .with(DomId(7), Access::Write)
            .with(DomId(7), Access::Read)
            .with(DomId::ANY, Access::Read);
        assert_eq!(p.rights(&caller(7)), Rights { read: false, write: true, owner: false });
        assert!(p.rights(&caller(9)).read);
    }

    #[test]
    fn target_acts_as_its_domain() {
        let p = Perms::new(DomId(5), Access::None);
        let stub = Caller { dom: DomId(6), target: Some(DomId(5)), privileged: false };
        assert_eq!(p.rights(&stub), Rights::ALL);
    }

    #[test]
    fn parse_and_encode_round_trip() {
        let p = Perms::parse([&b"n0"[..], b"r5", b"b65535"].into_iter()).unwrap();
        let mut out = Vec::new();
        p.encode(&mut out);
        assert_eq!(out, b"n0\0r5\0b65535\0");
        for bad in [&b""[..], b"x1", b"r", b"r-1", b"r65536", b"r 1", b"r0x5"] {
            assert_eq!(Perms::parse([bad].into_iter()), Err(Errno::EINVAL), "{bad:?}");
        }
        assert_eq!(Perms::parse(core::iter::empty()), Err(Errno::EINVAL));
    }

    #[test]
    fn removing_grants_keeps_owner() {
        let mut p = Perms::new(DomId(4), Access::None).with(DomId(4), Access::Read);
        p.remove_grants_for(DomId(4));
        assert_eq!(p.entries().len(), 1);
        assert_eq!(p.owner(), DomId(4));
    }
}
