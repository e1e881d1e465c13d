//! The checker: what must hold of a run's history, and the figures it prints.
//!
//! Per list, in the style of Jepsen's Elle for a single list-append object (no search over
//! orders, so operations of unknown outcome cost nothing):
//! - every acknowledged append is in the final read (nothing lost);
//! - every element read was appended by some invoked operation, none twice, none whose
//!   request never reached a node;
//! - every read is a prefix of the final read (all reads agree on one order);
//! - real time: a read that began after another ended is no shorter; a read holds every
//!   append acknowledged before it began and none invoked after it ended; an append
//!   acknowledged before another was invoked comes first.
//!
//! From the nodes' acknowledgement logs and the log's entries: one node per (list, epoch);
//! each acknowledgement names an entry of the log with its epoch; no entry acknowledged by two
//! nodes (turns grouped into one commit share an entry);
//! epochs never decrease along a list's entries; every operation a client saw succeed was
//! logged as acknowledged by a node.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use super::history::{History, Op, Outcome};

#[derive(Debug, Default)]
pub struct Report {
    pub anomalies: Vec<String>,
    /// Per (fault, list the faulted node held): how long until the list answered again, ms.
    pub takeovers_ms: Vec<u64>,
    /// The same, for takeovers during which the test process itself stalled (not judged).
    pub takeovers_across_stalls_ms: Vec<u64>,
    /// Operations on lists whose owner, and through nodes that, no fault touched: (ok, all).
    pub untouched: (usize, usize),
}

pub fn check(h: &History) -> Report {
    let mut report = Report::default();
    let mut by_list: BTreeMap<&str, Vec<&Op>> = BTreeMap::new();
    for op in &h.ops {
        by_list.entry(op.list.as_str()).or_default().push(op);
    }
    let finals: HashMap<&str, &Vec<String>> =
        h.final_reads.iter().map(|(l, e)| (l.as_str(), e)).collect();
    for (list, ops) in &by_list {
        match finals.get(list) {
            Some(last) => check_list(list, ops, last, &mut report.anomalies),
            None => report.anomalies.push(format!(
                "list {list}: not served after healing (no final read)"
            )),
        }
    }
    check_acks(h, &mut report.anomalies);
    (report.takeovers_ms, report.takeovers_across_stalls_ms) = takeovers(h);
    report.untouched = untouched(h);
    report
}

fn check_list(list: &str, ops: &[&Op], last: &[String], anomalies: &mut Vec<String>) {
    let mut report = |s: String| anomalies.push(format!("list {list}: {s}"));
    let invoked: HashMap<&str, &Op> = ops
        .iter()
        .filter_map(|op| Some((op.element()?, *op)))
        .collect();
    let position: HashMap<&str, usize> = last
        .iter()
        .enumerate()
        .map(|(i, e)| (e.as_str(), i))
        .collect();
    let appends_ok: Vec<&Op> = ops
        .iter()
        .copied()
        .filter(|op| op.ok() && op.element().is_some())
        .collect();
    for op in &appends_ok {
        if !position.contains_key(op.element().unwrap()) {
            report(format!(
                "lost: {} was acknowledged (at {} ms) but is not in the final read",
                op.id, op.completed_ms
            ));
        }
    }
    let reads: Vec<&Op> = ops
        .iter()
        .copied()
        .filter(|op| op.read().is_some())
        .collect();
    let mut all_reads: Vec<(&str, &[String])> = reads
        .iter()
        .map(|op| (op.id.as_str(), op.read().unwrap()))
        .collect();
    all_reads.push(("the final read", last));
    for (id, elements) in &all_reads {
        let mut seen = HashSet::new();
        for e in elements.iter() {
            if !seen.insert(e) {
                report(format!("duplicate: {id} holds {e} twice"));
            }
            match invoked.get(e.as_str()) {
                None => report(format!("phantom: {id} holds {e}, which no client appended")),
                Some(op) if op.outcome == Outcome::Failed => report(format!(
                    "phantom: {id} holds {e}, whose request never reached a node"
                )),
                Some(_) => {}
            }
        }
        if !last.starts_with(elements) {
            report(format!(
                "order: {id} ({} elements) is not a prefix of the final read; they part at {}",
                elements.len(),
                elements
                    .iter()
                    .zip(last)
                    .position(|(a, b)| a != b)
                    .unwrap_or(last.len())
            ));
        }
    }
    // In order of time, with running extremes of final positions, so that each real-time
    // check is a binary search rather than a pass over every pair (a long run has tens of
    // thousands of operations).
    fn placed<'a>(position: &HashMap<&str, usize>, op: &'a Op) -> Option<(usize, &'a Op)> {
        position.get(op.element()?).map(|&p| (p, op))
    }
    let done_before = Extremes::new(
        appends_ok
            .iter()
            .filter_map(|op| Some((op.completed_ms, placed(&position, op)?))),
        false,
    );
    let appends: Vec<&Op> = ops
        .iter()
        .copied()
        .filter(|op| op.element().is_some())
        .collect();
    let begun_after = Extremes::new(
        appends
            .iter()
            .filter_map(|op| Some((op.invoked_ms, placed(&position, op)?))),
        true,
    );
    for r in &reads {
        let elements = r.read().unwrap();
        if !last.starts_with(elements) {
            continue; // reported above; its positions mean nothing
        }
        if let Some((p, a)) = done_before.max_before(r.invoked_ms)
            && p >= elements.len()
        {
            report(format!(
                "stale read: {} (invoked at {} ms, via node{}) misses {}, acknowledged at {} ms",
                r.id, r.invoked_ms, r.node, a.id, a.completed_ms
            ));
        }
        if let Some((p, a)) = begun_after.min_after(r.completed_ms)
            && p < elements.len()
        {
            report(format!(
                "future read: {} (completed at {} ms) holds {}, invoked at {} ms",
                r.id, r.completed_ms, a.id, a.invoked_ms
            ));
        }
    }
    let longest_before = Extremes::new(
        reads
            .iter()
            .map(|r| (r.completed_ms, (r.read().unwrap().len(), *r))),
        false,
    );
    for later in &reads {
        let len = later.read().unwrap().len();
        if let Some((n, r)) = longest_before.max_before(later.invoked_ms)
            && n > len
        {
            report(format!(
                "stale read: {} ({len} elements) began after {} ({n} elements) ended",
                later.id, r.id
            ));
        }
    }
    for b in &appends_ok {
        let Some(&pb) = position.get(b.element().unwrap()) else {
            continue;
        };
        if let Some((pa, a)) = done_before.max_before(b.invoked_ms)
            && pa > pb
        {
            report(format!(
                "order: {} was acknowledged before {} was invoked, but comes after it",
                a.id, b.id
            ));
        }
    }
}

/// Operations in order of a time, each with a value, and the running maximum (or, from the
/// end, minimum) of the values with the operation holding it.
struct Extremes<'a> {
    times: Vec<u64>,
    running: Vec<(usize, &'a Op)>,
}

impl<'a> Extremes<'a> {
    /// `from_end`: running minima from the latest time back (for "after" questions).
    fn new(items: impl Iterator<Item = (u64, (usize, &'a Op))>, from_end: bool) -> Extremes<'a> {
        let mut items: Vec<_> = items.collect();
        items.sort_by_key(|(t, _)| *t);
        let times = items.iter().map(|(t, _)| *t).collect();
        let mut running: Vec<(usize, &Op)> = items.into_iter().map(|(_, v)| v).collect();
        if from_end {
            for i in (0..running.len().saturating_sub(1)).rev() {
                if running[i + 1].0 < running[i].0 {
                    running[i] = running[i + 1];
                }
            }
        } else {
            for i in 1..running.len() {
                if running[i - 1].0 > running[i].0 {
                    running[i] = running[i - 1];
                }
            }
        }
        Extremes { times, running }
    }

    /// The largest value among operations whose time is before `t`.
    fn max_before(&self, t: u64) -> Option<(usize, &'a Op)> {
        let i = self.times.partition_point(|&x| x < t);
        i.checked_sub(1).map(|i| self.running[i])
    }

    /// The smallest value among operations whose time is after `t`.
    fn min_after(&self, t: u64) -> Option<(usize, &'a Op)> {
        let i = self.times.partition_point(|&x| x <= t);
        self.running.get(i).copied()
    }
}

fn check_acks(h: &History, anomalies: &mut Vec<String>) {
    let entries: HashMap<(&str, u64), u64> = h
        .entries
        .iter()
        .map(|(l, seq, epoch)| ((l.as_str(), *seq), *epoch))
        .collect();
    let mut holders: HashMap<(&str, u64), BTreeSet<usize>> = HashMap::new();
    let mut acked_entries: HashMap<(&str, u64), (usize, &str)> = HashMap::new();
    for ack in &h.acks {
        holders
            .entry((&ack.list, ack.epoch))
            .or_default()
            .insert(ack.node);
        match entries.get(&(ack.list.as_str(), ack.seq)) {
            None => anomalies.push(format!(
                "list {}: node{} acknowledged {} as entry {} (epoch {}), which the log does not hold",
                ack.list, ack.node, ack.op, ack.seq, ack.epoch
            )),
            Some(&epoch) if epoch != ack.epoch => anomalies.push(format!(
                "list {}: node{} acknowledged {} as entry {} of epoch {}, but the log's entry {} is of epoch {epoch}",
                ack.list, ack.node, ack.op, ack.seq, ack.epoch, ack.seq
            )),
            Some(_) => {}
        }
        // Turns grouped into one commit share its entry; one node made it.
        if let Some((node, op)) = acked_entries.insert((&ack.list, ack.seq), (ack.node, &ack.op))
            && node != ack.node
        {
            anomalies.push(format!(
                "list {}: entry {} acknowledged by node{node} (for {op}) and by node{} (for {})",
                ack.list, ack.seq, ack.node, ack.op
            ));
        }
    }
    for ((list, epoch), nodes) in &holders {
        if nodes.len() > 1 {
            anomalies.push(format!(
                "list {list}: nodes {nodes:?} all acknowledged under epoch {epoch}"
            ));
        }
    }
    let mut along: BTreeMap<&str, Vec<(u64, u64)>> = BTreeMap::new();
    for (list, seq, epoch) in &h.entries {
        along.entry(list).or_default().push((*seq, *epoch));
    }
    for (list, mut entries) in along {
        entries.sort();
        for w in entries.windows(2) {
            if w[1].1 < w[0].1 {
                anomalies.push(format!(
                    "list {list}: entry {} has epoch {}, after entry {} of epoch {}",
                    w[1].0, w[1].1, w[0].0, w[0].1
                ));
            }
        }
    }
    // An operation may be acknowledged more than once: an answer lost on its way back is
    // retried, and the retry is acknowledged again (an append already there stays put).
    let mut logged: HashMap<&str, Vec<(u64, u64)>> = HashMap::new();
    for a in &h.acks {
        logged.entry(&a.op).or_default().push((a.epoch, a.seq));
    }
    for op in &h.ops {
        let Outcome::Ok { epoch, seq, .. } = op.outcome else {
            continue;
        };
        match logged.get(op.id.as_str()) {
            None => anomalies.push(format!(
                "list {}: {} succeeded, but no node logged acknowledging it",
                op.list, op.id
            )),
            Some(acks) if !acks.contains(&(epoch, seq)) => anomalies.push(format!(
                "list {}: {} answered entry {seq} of epoch {epoch}, but was logged as {acks:?}",
                op.list, op.id
            )),
            Some(_) => {}
        }
    }
}

/// Each list's acknowledgements as (time, node), in time order: who held it when.
struct Owners<'a>(HashMap<&'a str, Vec<(u64, usize)>>);

impl<'a> Owners<'a> {
    fn new(h: &'a History) -> Owners<'a> {
        let mut by_list: HashMap<&str, Vec<(u64, usize)>> = HashMap::new();
        for a in &h.acks {
            by_list.entry(&a.list).or_default().push((a.at_ms, a.node));
        }
        for acks in by_list.values_mut() {
            acks.sort_unstable();
        }
        Owners(by_list)
    }

    /// The node that last acknowledged on `list` at or before `at_ms`.
    fn at(&self, list: &str, at_ms: u64) -> Option<usize> {
        let acks = self.0.get(list)?;
        let i = acks.partition_point(|(t, _)| *t <= at_ms);
        i.checked_sub(1).map(|i| acks[i].1)
    }
}

/// For each fault that should move a node's lists, and each list the node held when it
/// began: the time from its start until an operation invoked after it succeeded on the list —
/// apart, those during which the test process stalled.
fn takeovers(h: &History) -> (Vec<u64>, Vec<u64>) {
    let lists: BTreeSet<&str> = h.ops.iter().map(|op| op.list.as_str()).collect();
    let owners = Owners::new(h);
    let (mut out, mut across) = (Vec::new(), Vec::new());
    for fault in h.faults.iter().filter(|f| f.takeover) {
        let Some(node) = fault.node else { continue };
        for list in &lists {
            if owners.at(list, fault.started_ms) != Some(node) {
                continue;
            }
            let back = h
                .ops
                .iter()
                .filter(|op| op.list == *list && op.ok() && op.invoked_ms >= fault.started_ms)
                .map(|op| op.completed_ms)
                .min();
            if let Some(back) = back {
                let stalled = h
                    .harness_stalls
                    .iter()
                    .any(|&(from, to)| from <= back && fault.started_ms <= to);
                if stalled { &mut across } else { &mut out }.push(back - fault.started_ms);
            }
        }
    }
    out.sort_unstable();
    across.sort_unstable();
    (out, across)
}

fn untouched(h: &History) -> (usize, usize) {
    let touched = |node: usize, from: u64, to: u64| {
        h.faults.iter().any(|f| {
            f.node.is_none_or(|n| n == node)
                && f.started_ms <= to
                && from <= f.healed_ms + h.lease_ms * 2
        })
    };
    let owners = Owners::new(h);
    let (mut ok, mut all) = (0, 0);
    for op in &h.ops {
        let Some(owner) = owners.at(&op.list, op.invoked_ms) else {
            continue;
        };
        if touched(owner, op.invoked_ms, op.completed_ms)
            || touched(op.node, op.invoked_ms, op.completed_ms)
        {
            continue;
        }
        all += 1;
        ok += usize::from(op.ok());
    }
    (ok, all)
}

/// The `q` quantile of sorted `values`.
pub fn quantile(values: &[u64], q: f64) -> Option<u64> {
    if values.is_empty() {
        return None;
    }
    let i = ((values.len() as f64 - 1.0) * q).round() as usize;
    Some(values[i])
}
