//! What happened in a run: every operation a client invoked and how it completed, every fault
//! the nemesis injected, and every acknowledgement the nodes logged.

use std::path::Path;

use serde::{Deserialize, Serialize};

/// Milliseconds since the Unix epoch (the nodes' acknowledgement logs use the same clock).
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Kind {
    /// Appends this element (unique in the run).
    Append(String),
    Read,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    /// Answered 200: for a read, the list it returned.
    Ok {
        epoch: u64,
        seq: u64,
        elements: Option<Vec<String>>,
    },
    /// Certainly not applied (the request never reached a node).
    Failed,
    /// May or may not have been applied.
    Unknown(String),
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Op {
    /// Unique in the run; also the element of an append, and a read's op id.
    pub id: String,
    pub client: usize,
    pub list: String,
    /// The node it entered through.
    pub node: usize,
    pub kind: Kind,
    pub invoked_ms: u64,
    pub completed_ms: u64,
    pub outcome: Outcome,
}

impl Op {
    pub fn ok(&self) -> bool {
        matches!(self.outcome, Outcome::Ok { .. })
    }

    pub fn read(&self) -> Option<&[String]> {
        match &self.outcome {
            Outcome::Ok {
                elements: Some(e), ..
            } => Some(e),
            _ => None,
        }
    }

    pub fn element(&self) -> Option<&str> {
        match &self.kind {
            Kind::Append(e) => Some(e),
            Kind::Read => None,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Fault {
    pub what: String,
    /// The node it hit (`None`: PostgreSQL itself, every node).
    pub node: Option<usize>,
    pub started_ms: u64,
    pub healed_ms: u64,
    /// Whether the node's actors were to be taken over (it was gone past its lease).
    pub takeover: bool,
}

/// One line of a node's acknowledgement log (`BURROW_FAULT_ACK_LOG`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Ack {
    #[serde(default)]
    pub node: usize,
    pub list: String,
    pub op: String,
    pub epoch: u64,
    pub seq: u64,
    pub read: bool,
    pub at_ms: u64,
}

/// Every acknowledgement node `node` logged to `path`. A line cut short by a kill is the only
/// one allowed not to parse, and only at the end.
pub fn read_acks(path: &Path, node: usize) -> Vec<Ack> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Vec::new();
    };
    let lines: Vec<&str> = text.lines().collect();
    let mut acks = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        match serde_json::from_str::<Ack>(line) {
            Ok(mut ack) => {
                ack.node = node;
                acks.push(ack);
            }
            Err(e) if i + 1 == lines.len() && !text.ends_with('\n') => {
                eprintln!("node{node}: a last line cut short ({e}): {line}");
            }
            Err(e) => panic!(
                "node{node}'s acknowledgement log, line {}: {e}: {line}",
                i + 1
            ),
        }
    }
    acks
}

/// A whole run, as the checker reads it.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct History {
    pub seed: u64,
    pub lease_ms: u64,
    pub ops: Vec<Op>,
    pub faults: Vec<Fault>,
    pub acks: Vec<Ack>,
    /// The log's entries of every list: (list, seq, epoch).
    pub entries: Vec<(String, u64, u64)>,
    /// The final read of each list, after every fault was healed.
    pub final_reads: Vec<(String, Vec<String>)>,
    /// When the test process itself did not run (a ticker woke late by over a second): the
    /// machine stalled, and times measured across it say nothing of the cluster.
    #[serde(default)]
    pub harness_stalls: Vec<(u64, u64)>,
}
