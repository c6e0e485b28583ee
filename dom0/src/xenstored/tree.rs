//! The node database, and copy-on-write layers over it.
//!
//! The committed tree is a map from absolute path to [`Node`]. Each node keeps its children's
//! names in creation order, which is the order DIRECTORY reports (Xen's C xenstored appends
//! to the child list the same way). The special watch targets `@introduceDomain` and
//! `@releaseDomain` live in the same map, outside the `/` hierarchy, so that GET_PERMS and
//! SET_PERMS work on them as in Xen.
//!
//! No operation edits the committed tree directly. It runs against a [`View`]: the tree seen
//! through an optional transaction [`Layer`] and a fresh per-operation layer that receives all
//! writes. Only when the operation has succeeded and passed its quota checks is its layer
//! folded into the transaction or applied to the tree. So a failing operation leaves nothing
//! behind, and transactions and plain requests share one implementation.
//!
//! Every node also carries a generation number, bumped on each committed change. A transaction
//! records the generation of every committed node it looked at ([`ReadSet`]); it may commit
//! only if all of them are unchanged, which is Xen's conflict rule.

use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;

use hypercall_abi::DomId;

use super::path;
use super::perms::{Access, Perms};
use super::quota::{NODE_OVERHEAD, Usage, UsageDelta, node_cost};

/// Generation recorded for "this node did not exist".
pub(crate) const ABSENT: u64 = 0;

/// The special watch targets, which are also permission-carrying nodes.
pub(crate) const INTRODUCE_DOMAIN: &str = "@introduceDomain";
pub(crate) const RELEASE_DOMAIN: &str = "@releaseDomain";

/// One node: a value, child names and permissions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Node {
    pub value: Vec<u8>,
    /// Leaf names of the children, in creation order.
    pub children: Vec<String>,
    pub perms: Perms,
    /// Committed generation; meaningless inside a layer.
    pub generation: u64,
}

impl Node {
    pub fn new(perms: Perms) -> Node {
        Node { value: Vec::new(), children: Vec::new(), perms, generation: ABSENT }
    }

    /// Size as the "node-size" quota measures it.
    pub fn size(&self) -> usize {
        self.value.len()
            + self.children.iter().map(|c| c.len() + 1).sum::<usize>()
            + self.perms.size()
    }
}

/// The committed database, with per-owner accounting kept in step with every change.
#[derive(Debug)]
pub(crate) struct Tree {
    nodes: BTreeMap<String, Node>,
    usage: BTreeMap<DomId, Usage>,
    generation: u64,
}

impl Tree {
    /// The tree xenstored starts with: `/`, `/tool/xenstored`, `/local/domain` and the two
    /// special nodes, all owned by the privileged domain with no access for others, except
    /// that every domain may watch `@releaseDomain` (as in Xen's `setup_structure`).
    pub fn new(privileged: DomId) -> Tree {
        let mut tree = Tree { nodes: BTreeMap::new(), usage: BTreeMap::new(), generation: ABSENT };
        let private = Perms::new(privileged, Access::None);
        tree.install("/", Node::new(private.clone()));
        for p in ["/tool", "/tool/xenstored", "/local", "/local/domain"] {
            tree.install(p, Node::new(private.clone()));
        }
        tree.install(INTRODUCE_DOMAIN, Node::new(private.clone()));
        tree.install(RELEASE_DOMAIN, Node::new(private.with(DomId::ANY, Access::Read)));
        tree
    }

    /// Adds a node and links it into its parent, committing both. Only for the initial tree.
    fn install(&mut self, p: &str, node: Node) {
        let mut layer = Layer::default();
        if !p.starts_with('@')
            && let Some(parent_path) = path::parent(p)
            && let Some(parent) = self.nodes.get(parent_path)
        {
            let mut parent = parent.clone();
            parent.children.push(String::from(path::basename(p)));
            layer.set(parent_path, Some(parent));
        }
        layer.set(p, Some(node));
        self.apply(layer);
    }

    pub fn get(&self, path: &str) -> Option<&Node> {
        self.nodes.get(path)
    }

    pub fn generation_of(&self, path: &str) -> u64 {
        self.nodes.get(path).map_or(ABSENT, |n| n.generation)
    }

    /// Makes a layer's changes permanent, giving each written node a fresh generation.
    pub fn apply(&mut self, layer: Layer) {
        for (p, state) in layer.entries {
            match state {
                Some(mut node) => {
                    self.generation += 1;
                    node.generation = self.generation;
                    self.charge(&p, &node, true);
                    if let Some(old) = self.nodes.insert(p.clone(), node) {
                        self.charge(&p, &old, false);
                    }
                }
                None => {
                    if let Some(old) = self.nodes.remove(&p) {
                        self.charge(&p, &old, false);
                    }
                }
            }
        }
    }

    fn charge(&mut self, p: &str, node: &Node, add: bool) {
        let owner = node.perms.owner();
        let cost = node_cost(p, node.size());
        let usage = self.usage.entry(owner).or_default();
        if add {
            usage.nodes += 1;
            usage.bytes += cost;
        } else {
            usage.nodes = usage.nodes.saturating_sub(1);
            usage.bytes = usage.bytes.saturating_sub(cost);
            if usage.nodes == 0 {
                self.usage.remove(&owner);
            }
        }
    }

    /// What the nodes owned by `dom` cost.
    pub fn usage(&self, dom: DomId) -> Usage {
        self.usage.get(&dom).copied().unwrap_or_default()
    }

    /// Bytes charged for the whole tree.
    pub fn total_bytes(&self) -> usize {
        self.usage.values().map(|u| u.bytes).sum()
    }

    /// The nodes owned by `dom` that do not lie below another node owned by `dom`: removing
    /// these subtrees removes everything `dom` owns (map order puts ancestors first).
    pub fn owned_roots(&self, dom: DomId) -> Vec<String> {
        let mut roots: Vec<String> = Vec::new();
        for (p, node) in &self.nodes {
            if node.perms.owner() != dom || p == "/" || p.starts_with('@') {
                continue;
            }
            if roots.last().is_some_and(|r| path::is_within(p, r)) {
                continue;
            }
            roots.push(p.clone());
        }
        roots
    }

    /// Removes every grant naming `dom` from every node (bumping the generation of the nodes
    /// changed, so that transactions holding stale copies of them conflict).
    pub fn strip_grants(&mut self, dom: DomId) {
        let mut layer = Layer::default();
        for (p, node) in &self.nodes {
            let mut perms = node.perms.clone();
            if perms.remove_grants_for(dom) {
                let mut changed = node.clone();
                changed.perms = perms;
                layer.set(p, Some(changed));
            }
        }
        self.apply(layer);
    }

    /// How `layer`, seen on top of `lower` (if any) and this tree, changes each owner's usage.
    pub fn usage_delta(
        &self,
        lower: Option<&Layer>,
        layer: &Layer,
        out: &mut BTreeMap<DomId, UsageDelta>,
    ) {
        for (p, state) in &layer.entries {
            let old = match lower.and_then(|l| l.lookup(p)) {
                Some(s) => s,
                None => self.nodes.get(p.as_str()),
            };
            if let Some(old) = old {
                let d = out.entry(old.perms.owner()).or_default();
                d.nodes -= 1;
                d.bytes -= node_cost(p, old.size()) as isize;
            }
            if let Some(new) = state {
                let d = out.entry(new.perms.owner()).or_default();
                d.nodes += 1;
                d.bytes += node_cost(p, new.size()) as isize;
            }
        }
    }

    /// Checks the structural invariants: every node but the root and the special nodes is
    /// listed exactly once by its parent, and every listed child exists.
    #[cfg(test)]
    pub fn check_consistency(&self) {
        for (p, node) in &self.nodes {
            for c in &node.children {
                assert!(self.nodes.contains_key(&path::child(p, c)), "{p} lists missing {c}");
            }
            if p == "/" || p.starts_with('@') {
                continue;
            }
            let parent = self.nodes.get(path::parent(p).unwrap()).expect("orphan");
            let base = path::basename(p);
            assert_eq!(parent.children.iter().filter(|c| *c == base).count(), 1, "{p}");
        }
        let mut recount: BTreeMap<DomId, Usage> = BTreeMap::new();
        for (p, node) in &self.nodes {
            let u = recount.entry(node.perms.owner()).or_default();
            u.nodes += 1;
            u.bytes += node_cost(p, node.size());
        }
        assert_eq!(recount, self.usage);
    }
}

/// Pending changes: path to new state (`None` = deleted), with a running byte count.
#[derive(Debug, Default)]
pub(crate) struct Layer {
    entries: BTreeMap<String, Option<Node>>,
    bytes: usize,
}

fn entry_cost(p: &str, state: Option<&Node>) -> usize {
    p.len() + state.map_or(0, Node::size) + NODE_OVERHEAD
}

impl Layer {
    /// `Some(state)` if this layer says something about `p`.
    pub fn lookup(&self, p: &str) -> Option<Option<&Node>> {
        self.entries.get(p).map(Option::as_ref)
    }

    pub fn set(&mut self, p: &str, state: Option<Node>) {
        self.bytes += entry_cost(p, state.as_ref());
        if let Some(old) = self.entries.insert(String::from(p), state) {
            self.bytes -= entry_cost(p, old.as_ref());
        }
    }

    /// Folds a later layer into this one.
    pub fn absorb(&mut self, upper: Layer) {
        for (p, state) in upper.entries {
            self.set(&p, state);
        }
    }

    /// Memory held by the layer (charged to the transaction's domain).
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// The written states (for node-size checks).
    pub fn written(&self) -> impl Iterator<Item = (&str, &Node)> {
        self.entries.iter().filter_map(|(p, s)| s.as_ref().map(|n| (p.as_str(), n)))
    }
}

/// The generations of committed nodes a transaction has looked at.
#[derive(Debug, Default)]
pub(crate) struct ReadSet {
    seen: BTreeMap<String, u64>,
    bytes: usize,
}

impl ReadSet {
    fn record(&mut self, p: &str, generation: u64) {
        if !self.seen.contains_key(p) {
            self.bytes += p.len() + NODE_OVERHEAD / 2;
            self.seen.insert(String::from(p), generation);
        }
    }

    pub fn contains(&self, p: &str) -> bool {
        self.seen.contains_key(p)
    }

    pub fn absorb(&mut self, other: ReadSet) {
        for (p, generation) in other.seen {
            self.record(&p, generation);
        }
    }

    /// True if any node looked at has changed since.
    pub fn is_stale(&self, tree: &Tree) -> bool {
        self.seen.iter().any(|(p, &generation)| tree.generation_of(p) != generation)
    }

    pub fn len(&self) -> usize {
        self.seen.len()
    }

    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

/// The tree as one operation sees it: committed nodes, under the transaction's layer, under
/// the operation's own layer, which receives every write.
pub(crate) struct View<'a> {
    base: &'a Tree,
    lower: Option<&'a Layer>,
    /// Reads the transaction recorded before this operation.
    seen: Option<&'a ReadSet>,
    /// Reads recorded by this operation; `Some` only inside a transaction.
    reads: Option<ReadSet>,
    layer: Layer,
}

impl<'a> View<'a> {
    /// A view for a request outside any transaction.
    pub fn direct(base: &'a Tree) -> View<'a> {
        View { base, lower: None, seen: None, reads: None, layer: Layer::default() }
    }

    /// A view for a request inside a transaction.
    pub fn transactional(base: &'a Tree, lower: &'a Layer, seen: &'a ReadSet) -> View<'a> {
        View {
            base,
            lower: Some(lower),
            seen: Some(seen),
            reads: Some(ReadSet::default()),
            layer: Layer::default(),
        }
    }

    /// Looks at a node without recording the access.
    pub fn peek(&self, p: &str) -> Option<&Node> {
        if let Some(state) = self.layer.lookup(p) {
            return state;
        }
        if let Some(state) = self.lower.and_then(|l| l.lookup(p)) {
            return state;
        }
        self.base.get(p)
    }

    /// Looks at a node, recording the committed generation if this is a transaction's first
    /// look at it.
    pub fn get(&mut self, p: &str) -> Option<&Node> {
        if let Some(reads) = self.reads.as_mut() {
            let known = self.layer.lookup(p).is_some()
                || self.lower.is_some_and(|l| l.lookup(p).is_some())
                || self.seen.is_some_and(|s| s.contains(p));
            if !known {
                reads.record(p, self.base.generation_of(p));
            }
        }
        self.peek(p)
    }

    pub fn put(&mut self, p: &str, node: Node) {
        self.layer.set(p, Some(node));
    }

    pub fn remove(&mut self, p: &str) {
        self.layer.set(p, None);
    }

    /// The operation's writes and (in a transaction) reads.
    pub fn into_parts(self) -> (Layer, Option<ReadSet>) {
        (self.layer, self.reads)
    }
}
