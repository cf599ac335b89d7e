//! Start and stop order under `requires=`/`after=`, as pure functions.
//!
//! The engine builds one [`Node`] per process; these functions only order
//! them. Dependencies come first; what they leave unordered keeps the order of
//! the nodes as given (supervisord's priority order), so a configuration
//! without dependencies is ordered exactly as before.

use std::collections::BTreeSet;

/// A process as the ordering sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node<Id> {
    /// The process.
    pub id: Id,
    /// Its group: a stop wave never spans two groups.
    pub group: String,
    /// What it depends on (`requires=` and `after=` alike).
    pub deps: Vec<Id>,
}

/// Topological order of `nodes`: every node after its dependencies, ties broken by
/// position in `nodes`. Dependencies outside `nodes` are ignored; a node caught in
/// a cycle (the configuration rejects them, so only a mix of old and new groups
/// after a reread can make one) is placed in its given position.
pub fn start_order<Id: Copy + PartialEq>(nodes: &[Node<Id>]) -> Vec<Id> {
    let index = |id: &Id| nodes.iter().position(|n| n.id == *id);
    let deps: Vec<Vec<usize>> =
        nodes.iter().map(|n| n.deps.iter().filter_map(index).collect::<Vec<_>>()).collect();
    let mut missing: Vec<usize> = deps.iter().map(|d| d.len()).collect();
    let mut ready: BTreeSet<usize> = (0..nodes.len()).filter(|&i| missing[i] == 0).collect();
    let mut placed = vec![false; nodes.len()];
    let mut out = Vec::with_capacity(nodes.len());
    while out.len() < nodes.len() {
        let next = match ready.pop_first() {
            Some(i) => i,
            // A cycle: release its first node.
            None => match (0..nodes.len()).find(|&i| !placed[i]) {
                Some(i) => i,
                None => break,
            },
        };
        if placed[next] {
            continue;
        }
        placed[next] = true;
        out.push(nodes[next].id);
        for (j, d) in deps.iter().enumerate() {
            if !placed[j] {
                let n = d.iter().filter(|&&k| k == next).count();
                if n > 0 {
                    missing[j] -= n;
                    if missing[j] == 0 {
                        ready.insert(j);
                    }
                }
            }
        }
    }
    out
}

/// Shutdown order: [`start_order`] reversed, cut into waves that are stopped one
/// after the other. A wave holds consecutive processes of one group (supervisord
/// stops a group at a time) and never a process together with one that depends on it.
pub fn stop_waves<Id: Copy + PartialEq>(nodes: &[Node<Id>]) -> Vec<Vec<Id>> {
    let mut order = start_order(nodes);
    order.reverse();
    let node = |id: &Id| nodes.iter().find(|n| n.id == *id);
    let mut waves: Vec<Vec<Id>> = Vec::new();
    let mut group: Option<&str> = None;
    for id in order {
        let Some(n) = node(&id) else { continue };
        let split = match waves.last() {
            None => true,
            Some(wave) => {
                group != Some(n.group.as_str())
                    || wave.iter().any(|w| node(w).is_some_and(|wn| wn.deps.contains(&id)))
            }
        };
        if split {
            waves.push(Vec::new());
            group = Some(n.group.as_str());
        }
        if let Some(wave) = waves.last_mut() {
            wave.push(id);
        }
    }
    waves
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(id: u32, group: &str, deps: &[u32]) -> Node<u32> {
        Node { id, group: group.into(), deps: deps.to_vec() }
    }

    #[test]
    fn without_dependencies_the_given_order_is_kept() {
        let nodes = [node(1, "a", &[]), node(2, "b", &[]), node(3, "b", &[])];
        assert_eq!(start_order(&nodes), vec![1, 2, 3]);
        assert_eq!(stop_waves(&nodes), vec![vec![3, 2], vec![1]], "a group at a time, in reverse");
    }

    #[test]
    fn dependencies_come_first_and_priority_orders_the_rest() {
        // 1 requires 3; 2 is unrelated and keeps its place before 3.
        let nodes = [node(1, "a", &[3]), node(2, "b", &[]), node(3, "c", &[]), node(4, "d", &[1])];
        assert_eq!(start_order(&nodes), vec![2, 3, 1, 4]);
        assert_eq!(stop_waves(&nodes), vec![vec![4], vec![1], vec![3], vec![2]]);
    }

    #[test]
    fn a_group_is_split_where_its_members_depend_on_each_other() {
        let nodes = [node(1, "g", &[2]), node(2, "g", &[]), node(3, "g", &[])];
        assert_eq!(start_order(&nodes), vec![2, 1, 3]);
        assert_eq!(stop_waves(&nodes), vec![vec![3, 1], vec![2]]);
    }

    #[test]
    fn unknown_dependencies_are_ignored_and_cycles_still_order_everything() {
        let nodes = [node(1, "a", &[9]), node(2, "b", &[3]), node(3, "c", &[2])];
        let order = start_order(&nodes);
        assert_eq!(order[0], 1);
        assert_eq!(order.len(), 3);
    }
}
