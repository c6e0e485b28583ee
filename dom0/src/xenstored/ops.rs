//! The database operations (READ, DIRECTORY, GET_PERMS, WRITE, MKDIR, RM, SET_PERMS) on a
//! [`View`], with Xen's permission and error rules.
//!
//! Error codes follow Xen's `get_node_chk_perm`: a node that exists but may not be accessed is
//! `EACCES`; a node that does not exist is `ENOENT` only if the caller has some of the wanted
//! rights on its nearest existing ancestor, and `EACCES` otherwise, so that probing cannot
//! reveal what lies in a directory one may not read. Creating a node needs write access to the
//! nearest existing ancestor. New nodes inherit their parent's permissions, except that a node
//! an unprivileged domain creates is owned by that domain (Xen's `construct_node`).
//!
//! Each modifying operation reports [`Change`]s, from which watch events are made once the
//! change is committed.

use alloc::string::String;
use alloc::vec::Vec;

use hypercall_abi::errno::Errno;

use super::path;
use super::perms::{Caller, Need, Perms};
use super::tree::{Node, View};
use super::watch::{Change, Scope};

/// Checks that `p` exists and the caller has `need` on it.
pub(crate) fn check(
    view: &mut View<'_>,
    caller: &Caller,
    p: &str,
    need: Need,
) -> Result<(), Errno> {
    if let Some(node) = view.get(p) {
        return if node.perms.rights(caller).has(need) { Ok(()) } else { Err(Errno::EACCES) };
    }
    let mut ancestor = path::parent(p);
    while let Some(a) = ancestor {
        if let Some(node) = view.get(a) {
            let overlaps = node.perms.rights(caller).overlaps(need);
            return Err(if overlaps { Errno::ENOENT } else { Errno::EACCES });
        }
        ancestor = path::parent(a);
    }
    // Only reachable if the root were missing, which the tree never allows.
    Err(Errno::EACCES)
}

/// READ: the node's value.
pub(crate) fn read(view: &mut View<'_>, caller: &Caller, p: &str) -> Result<Vec<u8>, Errno> {
    check(view, caller, p, Need::Read)?;
    Ok(view.peek(p).map(|n| n.value.clone()).unwrap_or_default())
}

/// DIRECTORY: the children's names, each followed by a nul, in creation order.
pub(crate) fn directory(view: &mut View<'_>, caller: &Caller, p: &str) -> Result<Vec<u8>, Errno> {
    check(view, caller, p, Need::Read)?;
    let mut out = Vec::new();
    for c in view.peek(p).map(|n| n.children.as_slice()).unwrap_or_default() {
        out.extend_from_slice(c.as_bytes());
        out.push(0);
    }
    Ok(out)
}

/// GET_PERMS: the permission list in its string form.
pub(crate) fn get_perms(view: &mut View<'_>, caller: &Caller, p: &str) -> Result<Vec<u8>, Errno> {
    check(view, caller, p, Need::Read)?;
    let mut out = Vec::new();
    if let Some(n) = view.peek(p) {
        n.perms.encode(&mut out);
    }
    Ok(out)
}

/// WRITE: sets the value, creating the node and any missing ancestors.
pub(crate) fn write(
    view: &mut View<'_>,
    caller: &Caller,
    p: &str,
    value: &[u8],
    changes: &mut Vec<Change>,
) -> Result<(), Errno> {
    match check(view, caller, p, Need::Write) {
        Ok(()) => {
            let Some(old) = view.peek(p) else { return Err(Errno::ENOENT) };
            let mut node = old.clone();
            node.value = value.to_vec();
            changes.push(Change::new(p, Scope::Subtree, Some(old.perms.clone())));
            view.put(p, node);
            Ok(())
        }
        Err(e) if e == Errno::ENOENT => {
            create(view, caller, p, value)?;
            changes.push(Change::new(p, Scope::Subtree, None));
            Ok(())
        }
        Err(e) => Err(e),
    }
}

/// MKDIR: makes sure the node exists; an existing node is left alone (and fires nothing).
pub(crate) fn mkdir(
    view: &mut View<'_>,
    caller: &Caller,
    p: &str,
    changes: &mut Vec<Change>,
) -> Result<(), Errno> {
    match check(view, caller, p, Need::Write) {
        Ok(()) => Ok(()),
        Err(e) if e == Errno::ENOENT => {
            create(view, caller, p, &[])?;
            changes.push(Change::new(p, Scope::Subtree, None));
            Ok(())
        }
        Err(e) => Err(e),
    }
}

/// Creates `p` with `value`, and any missing ancestors with empty values. The caller has
/// checked that `p` is missing and that the nearest existing ancestor is writable.
fn create(view: &mut View<'_>, caller: &Caller, p: &str, value: &[u8]) -> Result<(), Errno> {
    // Walk up to the nearest existing ancestor, remembering the missing levels.
    let mut missing: Vec<String> = Vec::new();
    let mut cur = String::from(p);
    let mut parent_node = loop {
        let Some(parent) = path::parent(&cur) else { return Err(Errno::EINVAL) };
        let parent = String::from(parent);
        missing.push(core::mem::replace(&mut cur, parent));
        if let Some(node) = view.get(&cur) {
            break node.clone();
        }
    };
    // Walk back down, linking each new node into its parent.
    let mut parent_path = cur;
    while let Some(new_path) = missing.pop() {
        let name = String::from(path::basename(&new_path));
        let mut perms = parent_node.perms.clone();
        if !caller.privileged {
            perms.set_owner(caller.dom);
        }
        if !parent_node.children.contains(&name) {
            parent_node.children.push(name);
        }
        view.put(&parent_path, parent_node);
        let mut node = Node::new(perms);
        if missing.is_empty() {
            node.value = value.to_vec();
        }
        parent_node = node;
        parent_path = new_path;
    }
    view.put(&parent_path, parent_node);
    Ok(())
}

/// RM: removes the node and its whole subtree. Removing a missing node is fine if its parent
/// exists; removing `/` is `EINVAL`.
pub(crate) fn rm(
    view: &mut View<'_>,
    caller: &Caller,
    p: &str,
    changes: &mut Vec<Change>,
) -> Result<(), Errno> {
    match check(view, caller, p, Need::Write) {
        Ok(()) => {}
        Err(e) if e == Errno::ENOENT => {
            // As Xen: the parent's existence is checked without a permission check (the
            // ENOENT above already told us an ancestor is writable).
            let parent_exists = path::parent(p).is_some_and(|parent| view.get(parent).is_some());
            return if parent_exists { Ok(()) } else { Err(Errno::ENOENT) };
        }
        Err(e) => return Err(e),
    }
    let Some(parent_path) = path::parent(p) else { return Err(Errno::EINVAL) };
    remove_subtree(view, p, changes);
    if let Some(parent) = view.get(parent_path) {
        let mut parent = parent.clone();
        let name = path::basename(p);
        parent.children.retain(|c| c != name);
        view.put(parent_path, parent);
    }
    Ok(())
}

/// Deletes `root` and everything below it (without touching `root`'s parent). Iterative, so
/// that a deep tree cannot overflow dom0's stack. Descendants are reported as exact changes
/// (a watch on a removed node fires with its own path), `root` as a subtree change (watches
/// on it and on its ancestors fire with `root`), children before parents, as Xen does.
pub(crate) fn remove_subtree(view: &mut View<'_>, root: &str, changes: &mut Vec<Change>) {
    let mut order: Vec<(String, Perms)> = Vec::new();
    let mut stack: Vec<String> = alloc::vec![String::from(root)];
    while let Some(p) = stack.pop() {
        let Some(node) = view.get(&p) else { continue };
        let perms = node.perms.clone();
        for c in &node.children {
            stack.push(path::child(&p, c));
        }
        order.push((p, perms));
    }
    // `order` lists every node after its parent; reversed, children come first.
    for (p, perms) in order.into_iter().rev() {
        let scope = if p == root { Scope::Subtree } else { Scope::Exact };
        view.remove(&p);
        changes.push(Change::new(&p, scope, Some(perms)));
    }
}

/// SET_PERMS: replaces the permission list. Needs ownership; only the privileged domain may
/// hand a node to another owner (`EPERM` otherwise, as current Xen).
pub(crate) fn set_perms(
    view: &mut View<'_>,
    caller: &Caller,
    p: &str,
    perms: Perms,
    changes: &mut Vec<Change>,
) -> Result<(), Errno> {
    check(view, caller, p, Need::Owner)?;
    let Some(old) = view.peek(p) else { return Err(Errno::ENOENT) };
    if !caller.privileged && perms.owner() != old.perms.owner() {
        return Err(Errno::EPERM);
    }
    let mut node = old.clone();
    changes.push(Change::new(p, Scope::Subtree, Some(old.perms.clone())));
    node.perms = perms;
    view.put(p, node);
    Ok(())
}
