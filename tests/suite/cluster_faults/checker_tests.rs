//! The checker on small made-up histories: a correct one passes, and each kind of anomaly is
//! found (so that a clean fault run means something).

use super::checker::check;
use super::history::{Ack, History, Kind, Op, Outcome};

fn append(id: &str, at: (u64, u64), outcome: Outcome) -> Op {
    Op {
        id: id.into(),
        client: 0,
        list: "l".into(),
        node: 0,
        kind: Kind::Append(id.into()),
        invoked_ms: at.0,
        completed_ms: at.1,
        outcome,
    }
}

fn ok(seq: u64) -> Outcome {
    Outcome::Ok {
        epoch: 1,
        seq,
        elements: None,
    }
}

fn read(id: &str, at: (u64, u64), seq: u64, elements: &[&str]) -> Op {
    Op {
        id: id.into(),
        client: 1,
        list: "l".into(),
        node: 0,
        kind: Kind::Read,
        invoked_ms: at.0,
        completed_ms: at.1,
        outcome: Outcome::Ok {
            epoch: 1,
            seq,
            elements: Some(elements.iter().map(|e| e.to_string()).collect()),
        },
    }
}

fn ack(node: usize, op: &str, epoch: u64, seq: u64) -> Ack {
    Ack {
        node,
        list: "l".into(),
        op: op.into(),
        epoch,
        seq,
        read: false,
        at_ms: seq * 10,
    }
}

/// a (entry 1), b (entry 2), a read of both (entry 3), c unknown and never applied.
fn clean() -> History {
    History {
        lease_ms: 2_000,
        ops: vec![
            append("a", (0, 10), ok(1)),
            append("b", (5, 20), ok(2)),
            read("r", (25, 30), 3, &["a", "b"]),
            append("c", (26, 40), Outcome::Unknown("timed out".into())),
        ],
        acks: vec![ack(0, "a", 1, 1), ack(0, "b", 1, 2), ack(0, "r", 1, 3)],
        entries: vec![("l".into(), 1, 1), ("l".into(), 2, 1), ("l".into(), 3, 1)],
        final_reads: vec![("l".into(), vec!["a".into(), "b".into()])],
        ..History::default()
    }
}

fn found(h: &History, what: &str) {
    let report = check(h);
    assert!(
        report.anomalies.iter().any(|a| a.contains(what)),
        "expected {what:?}, found {:?}",
        report.anomalies
    );
}

#[test]
fn a_correct_history_passes() {
    assert_eq!(check(&clean()).anomalies, Vec::<String>::new());
}

#[test]
fn a_lost_acknowledged_append_is_found() {
    let mut h = clean();
    h.final_reads[0].1.pop();
    found(&h, "lost: b");
}

#[test]
fn a_read_missing_an_earlier_acknowledged_append_is_found() {
    let mut h = clean();
    h.ops[2] = read("r", (25, 30), 3, &["a"]);
    found(&h, "stale read: r");
}

#[test]
fn phantoms_duplicates_and_elements_never_sent_are_found() {
    let mut h = clean();
    h.final_reads[0].1.push("z".into());
    found(&h, "phantom: the final read holds z");
    let mut h = clean();
    h.ops[2] = read("r", (25, 30), 3, &["a", "b", "a"]);
    found(&h, "duplicate: r holds a twice");
    let mut h = clean();
    h.ops[3].outcome = Outcome::Failed;
    h.final_reads[0].1.push("c".into());
    found(&h, "whose request never reached a node");
}

#[test]
fn reads_that_disagree_on_order_or_go_back_in_time_are_found() {
    let mut h = clean();
    h.ops[2] = read("r", (25, 30), 3, &["b", "a"]);
    found(&h, "order: r");
    let mut h = clean();
    h.ops.push(read("r2", (31, 35), 4, &["a"]));
    found(&h, "stale read: r2");
    let mut h = clean();
    h.ops[3].invoked_ms = 31;
    h.ops[2] = read("r", (25, 30), 3, &["a", "b", "c"]);
    h.final_reads[0].1.push("c".into());
    found(&h, "future read: r (completed at 30 ms) holds c");
    let mut h = clean();
    h.final_reads[0].1 = vec!["b".into(), "a".into()];
    h.ops[2] = read("r", (25, 30), 3, &["b", "a"]);
    h.ops[1].invoked_ms = 15;
    found(&h, "order: a was acknowledged before b was invoked");
}

#[test]
fn two_nodes_in_one_epoch_and_acknowledgements_without_entries_are_found() {
    let mut h = clean();
    h.acks[1].node = 1;
    found(&h, "all acknowledged under epoch 1");
    let mut h = clean();
    h.entries[1].2 = 2;
    h.entries[2].2 = 2;
    found(&h, "but the log's entry 2 is of epoch 2");
    let mut h = clean();
    h.entries.pop();
    found(&h, "which the log does not hold");
    let mut h = clean();
    h.acks.pop();
    found(&h, "r succeeded, but no node logged acknowledging it");
    let mut h = clean();
    h.acks.push(ack(1, "b2", 1, 2));
    found(
        &h,
        "entry 2 acknowledged by node0 (for b) and by node1 (for b2)",
    );
    let mut h = clean();
    h.entries[2].2 = 0;
    found(&h, "entry 3 has epoch 0, after entry 2 of epoch 1");
}
