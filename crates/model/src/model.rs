//! The state, the actions and the properties.

use stateright::{Model, Property};

use crate::{ActorId, NodeId};

/// The store's view of one node (`burrow_node`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct StoredNode {
    /// Its incarnation.
    pub incarnation: u8,
    /// Whether its lease runs, by the store's clock.
    pub lease: bool,
}

/// The store's view of one actor (`burrow_log_actor` and its `burrow_log_entry` rows).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct StoredActor {
    /// Its epoch.
    pub epoch: u8,
    /// Who holds it (`node_id`, `node_incarnation`).
    pub holder: Option<(NodeId, u8)>,
    /// The log: (epoch, value) by sequence.
    pub log: Vec<(u8, u8)>,
}

/// What a node holds of an actor after a claim.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Activation {
    /// The node's incarnation when it claimed.
    pub incarnation: u8,
    /// The epoch its claim returned.
    pub epoch: u8,
    /// The log's head as the node knows it.
    pub head: u8,
    /// The actor's state (the values appended) as the node holds it.
    pub local: Vec<u8>,
    /// The value of the turn whose append is out, awaiting the store's answer.
    pub pending: Option<u8>,
}

/// One node's own view.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Node {
    /// The incarnation it is a member under.
    pub incarnation: u8,
    /// Whether its local deadline has not passed.
    pub local_lease: bool,
    /// Its activation of each actor.
    pub activations: Vec<Option<Activation>>,
    /// Each actor's file: the values committed locally (kept across restarts unless lost).
    pub files: Vec<Vec<u8>>,
    /// Paused in the middle of a turn (after checking its lease) for longer than the lease:
    /// when it resumes, that turn's append goes out, and then it finds its lease over.
    pub stalled: bool,
}

/// A message between a node and the store.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Msg {
    /// A fenced append on its way to the store.
    Append {
        /// The sender.
        node: NodeId,
        /// The actor.
        actor: ActorId,
        /// The epoch of the sender's claim.
        epoch: u8,
        /// The head the sender appends after.
        head: u8,
        /// The value.
        value: u8,
    },
    /// The store's answer, on its way back.
    Answer {
        /// The node.
        node: NodeId,
        /// The actor.
        actor: ActorId,
        /// The value appended.
        value: u8,
        /// Whether the append landed (`false`: fenced).
        landed: bool,
    },
}

/// The whole system.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct State {
    /// The store's actors.
    pub actors: Vec<StoredActor>,
    /// The store's nodes.
    pub stored: Vec<StoredNode>,
    /// The nodes.
    pub nodes: Vec<Node>,
    /// Messages in flight, sorted (a multiset: any may be delivered next, or lost).
    pub net: Vec<Msg>,
    /// Every acknowledged append: (node, actor, epoch, value).
    pub acked: Vec<(NodeId, ActorId, u8, u8)>,
    /// The next value to append (values are unique across actors).
    pub next_value: u8,
    /// Set when a read missed a value acknowledged before it began.
    pub stale_read: bool,
    /// Set when a claim found a node's file holding what the log does not.
    pub diverged: bool,
}

/// What can happen.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Action {
    /// The claim upsert of `placement::claim`, answered, then the catch-up from the log.
    Claim(NodeId, ActorId),
    /// The same claim whose answer is lost: the store moved the epoch, the node knows nothing.
    ClaimLost(NodeId, ActorId),
    /// A turn's append goes out (`statements::fenced_append`, sent).
    Send(NodeId, ActorId),
    /// The store runs an append in flight (index into `net`).
    Deliver(usize),
    /// An answer reaches its node: landed → local `COMMIT` and the reply to the client;
    /// fenced → the activation is discarded.
    Receive(usize),
    /// A message is lost.
    Lose(usize),
    /// The append's answer does not come within the append timeout: the turn fails as
    /// indeterminate and the activation is discarded (the append may still land).
    Timeout(NodeId, ActorId),
    /// A read-only turn on the node's activation (checked against its local lease first).
    Read(NodeId, ActorId),
    /// `placement::release` when the actor is closed.
    Release(NodeId, ActorId),
    /// `Member::renew`: succeeds only while the stored lease runs.
    Renew(NodeId),
    /// Time passes: the node's lease runs out in the store (and so locally first).
    Expire(NodeId),
    /// The node is paused mid-turn past its lease: the store's lease ends while a turn, which
    /// checked the lease before the pause, is still to send its append.
    Stall(NodeId),
    /// The stalled node resumes with nothing to append, and finds its lease over.
    Wake(NodeId),
    /// `Member::join` after a lost lease: a new incarnation; an actor in a turn may keep its
    /// activation (only idle ones are closed).
    Rejoin(NodeId),
    /// kill -9 and restart: a new incarnation, no activation; the files kept (`true`) or
    /// lost with the disk.
    Restart(NodeId, bool),
}

/// The protocol's parameters and the bounds of the search.
#[derive(Clone, Debug)]
pub struct Protocol {
    /// How many nodes.
    pub nodes: u8,
    /// How many actors.
    pub actors: u8,
    /// How many appends at most, over all actors.
    pub values: u8,
    /// The highest incarnation a node may reach.
    pub incarnations: u8,
    /// The highest epoch a claim may reach.
    pub epochs: u8,
    /// Whether messages may be lost (reordering is always possible).
    pub lossy: bool,
    /// Whether appends are fenced. The mutant (`false`) is the unfenced append of the
    /// `faults` builds: last writer wins at its sequence, and the head moves to it.
    pub fenced: bool,
    /// Whether an activation claimed under an earlier incarnation of its node still serves
    /// (as the code did for an actor that was in a turn when its node rejoined). The runtime's
    /// rule: it serves only under the incarnation it claimed in (`false`).
    pub stale_activations_serve: bool,
}

impl Protocol {
    /// What `cargo test` checks: two nodes, one actor, lossy messages, three appends, one
    /// restart or rejoin per node, three claims (about 600 000 states, seconds).
    pub fn bounded() -> Protocol {
        Protocol {
            nodes: 2,
            actors: 1,
            values: 3,
            incarnations: 2,
            epochs: 3,
            lossy: true,
            fenced: true,
            stale_activations_serve: false,
        }
    }

    /// The deeper check: three nodes (two of them may race to take over from the third).
    pub fn deep() -> Protocol {
        Protocol {
            nodes: 3,
            ..Protocol::bounded()
        }
    }

    /// Two actors on two nodes, whose turns interleave across the nodes' shared leases and
    /// restarts: without message loss and with two appends, to stay near 20 million states.
    pub fn two_actors() -> Protocol {
        Protocol {
            actors: 2,
            values: 2,
            lossy: false,
            ..Protocol::bounded()
        }
    }

    fn serves(&self, node: &Node, act: &Activation) -> bool {
        self.stale_activations_serve || act.incarnation == node.incarnation
    }
}

impl Model for Protocol {
    type State = State;
    type Action = Action;

    fn init_states(&self) -> Vec<State> {
        let actors = usize::from(self.actors);
        vec![State {
            actors: vec![
                StoredActor {
                    epoch: 0,
                    holder: None,
                    log: Vec::new(),
                };
                actors
            ],
            stored: vec![
                StoredNode {
                    incarnation: 1,
                    lease: true
                };
                usize::from(self.nodes)
            ],
            nodes: vec![
                Node {
                    incarnation: 1,
                    local_lease: true,
                    activations: vec![None; actors],
                    files: vec![Vec::new(); actors],
                    stalled: false,
                };
                usize::from(self.nodes)
            ],
            net: Vec::new(),
            acked: Vec::new(),
            next_value: 0,
            stale_read: false,
            diverged: false,
        }]
    }

    fn actions(&self, state: &State, actions: &mut Vec<Action>) {
        for i in 0..state.net.len() {
            match state.net[i] {
                Msg::Append { .. } => actions.push(Action::Deliver(i)),
                Msg::Answer { .. } => actions.push(Action::Receive(i)),
            }
            if self.lossy {
                actions.push(Action::Lose(i));
            }
        }
        let more = state.next_value < self.values;
        for n in 0..self.nodes {
            let node = &state.nodes[usize::from(n)];
            let stored = &state.stored[usize::from(n)];
            for a in 0..self.actors {
                match &node.activations[usize::from(a)] {
                    Some(act) if act.pending.is_some() => actions.push(Action::Timeout(n, a)),
                    Some(_) if node.stalled && more => actions.push(Action::Send(n, a)),
                    Some(_) if node.stalled => {}
                    Some(act) if node.local_lease && self.serves(node, act) => {
                        if more {
                            actions.push(Action::Send(n, a));
                        }
                        actions.push(Action::Read(n, a));
                        actions.push(Action::Release(n, a));
                    }
                    Some(_) => actions.push(Action::Release(n, a)),
                    None if node.local_lease
                        && !node.stalled
                        && state.actors[usize::from(a)].epoch < self.epochs =>
                    {
                        actions.push(Action::Claim(n, a));
                        if self.lossy {
                            actions.push(Action::ClaimLost(n, a));
                        }
                    }
                    None => {}
                }
            }
            if node.stalled {
                actions.push(Action::Wake(n));
                continue;
            }
            let idle = node
                .activations
                .iter()
                .flatten()
                .all(|a| a.pending.is_none());
            if node.local_lease
                && stored.lease
                && idle
                && node.activations.iter().any(Option::is_some)
            {
                actions.push(Action::Stall(n));
            }
            if node.local_lease {
                actions.push(Action::Renew(n));
            }
            if stored.lease {
                actions.push(Action::Expire(n));
            }
            if node.incarnation < self.incarnations {
                if !node.local_lease {
                    actions.push(Action::Rejoin(n));
                }
                actions.push(Action::Restart(n, true));
                actions.push(Action::Restart(n, false));
            }
        }
    }

    fn next_state(&self, last: &State, action: Action) -> Option<State> {
        let mut s = last.clone();
        match action {
            Action::Claim(n, a) | Action::ClaimLost(n, a) => {
                let (i, k) = (usize::from(n), usize::from(a));
                let incarnation = s.nodes[i].incarnation;
                // WHERE EXISTS (the claimer is alive and its lease runs)
                let me = &s.stored[i];
                if !me.lease || me.incarnation != incarnation {
                    return None;
                }
                // ON CONFLICT … WHERE free, or its own, or the holder is gone
                let allowed = match s.actors[k].holder {
                    None => true,
                    Some(h) if h == (n, incarnation) => true,
                    Some((h, inc)) => {
                        let holder = &s.stored[usize::from(h)];
                        !holder.lease || holder.incarnation != inc
                    }
                };
                if !allowed {
                    return None;
                }
                let actor = &mut s.actors[k];
                actor.epoch += 1;
                actor.holder = Some((n, incarnation));
                if matches!(action, Action::Claim(..)) {
                    // The catch-up: the file must be a prefix of the log; the entries after
                    // it are applied.
                    let values: Vec<u8> = actor.log.iter().map(|(_, v)| *v).collect();
                    let file = &mut s.nodes[i].files[k];
                    if !values.starts_with(file) {
                        s.diverged = true;
                    }
                    *file = values.clone();
                    s.nodes[i].activations[k] = Some(Activation {
                        incarnation,
                        epoch: actor.epoch,
                        head: actor.log.len() as u8,
                        local: values,
                        pending: None,
                    });
                }
            }
            Action::Send(n, a) => {
                let (i, k) = (usize::from(n), usize::from(a));
                let value = s.next_value;
                let node = &mut s.nodes[i];
                let act = node.activations[k].as_mut()?;
                act.pending = Some(value);
                let (epoch, head) = (act.epoch, act.head);
                if node.stalled {
                    // The stalled turn's append went out; then the node finds its lease over.
                    node.stalled = false;
                    node.local_lease = false;
                }
                s.next_value += 1;
                s.net.push(Msg::Append {
                    node: n,
                    actor: a,
                    epoch,
                    head,
                    value,
                });
                s.net.sort();
            }
            Action::Deliver(m) => {
                let Msg::Append {
                    node,
                    actor,
                    epoch,
                    head,
                    value,
                } = s.net.remove(m)
                else {
                    return None;
                };
                let stored = &mut s.actors[usize::from(actor)];
                // UPDATE … WHERE epoch = $epoch AND head_seq = $expected, then the INSERT
                let landed = stored.epoch == epoch && stored.log.len() as u8 == head;
                if landed {
                    stored.log.push((epoch, value));
                } else if !self.fenced {
                    // The mutant: the entry at its sequence is overwritten, the head moves there.
                    stored.log.truncate(usize::from(head));
                    stored.log.push((epoch, value));
                }
                s.net.push(Msg::Answer {
                    node,
                    actor,
                    value,
                    landed: landed || !self.fenced,
                });
                s.net.sort();
            }
            Action::Receive(m) => {
                let Msg::Answer {
                    node,
                    actor,
                    value,
                    landed,
                } = s.net.remove(m)
                else {
                    return None;
                };
                let (i, k) = (usize::from(node), usize::from(actor));
                let slot = &mut s.nodes[i].activations[k];
                // An answer for a turn this node no longer waits on (it timed out, or the
                // process restarted) is dropped with its connection.
                if slot.as_ref().and_then(|a| a.pending) != Some(value) {
                    return Some(s);
                }
                if landed {
                    let act = slot.as_mut().expect("pending");
                    act.pending = None;
                    act.head += 1;
                    act.local.push(value);
                    let epoch = act.epoch;
                    s.nodes[i].files[k].push(value);
                    s.acked.push((node, actor, epoch, value));
                } else {
                    *slot = None;
                }
            }
            Action::Lose(m) => {
                s.net.remove(m);
            }
            Action::Timeout(n, a) => {
                s.nodes[usize::from(n)].activations[usize::from(a)] = None;
            }
            Action::Read(n, a) => {
                let node = &s.nodes[usize::from(n)];
                let act = node.activations[usize::from(a)].as_ref()?;
                if s.acked
                    .iter()
                    .any(|&(_, b, _, v)| b == a && !act.local.contains(&v))
                {
                    s.stale_read = true;
                }
            }
            Action::Release(n, a) => {
                let (i, k) = (usize::from(n), usize::from(a));
                let act = s.nodes[i].activations[k].take()?;
                let actor = &mut s.actors[k];
                if actor.holder == Some((n, act.incarnation)) && actor.epoch == act.epoch {
                    actor.holder = None;
                }
            }
            Action::Renew(n) => {
                let i = usize::from(n);
                // UPDATE … WHERE incarnation matches AND lease_expires_at > clock_timestamp()
                if !(s.stored[i].lease && s.stored[i].incarnation == s.nodes[i].incarnation) {
                    s.nodes[i].local_lease = false;
                }
            }
            Action::Stall(n) => {
                let i = usize::from(n);
                s.stored[i].lease = false;
                s.nodes[i].stalled = true;
            }
            Action::Wake(n) => {
                let i = usize::from(n);
                s.nodes[i].stalled = false;
                s.nodes[i].local_lease = false;
            }
            Action::Expire(n) => {
                let i = usize::from(n);
                s.stored[i].lease = false;
                s.nodes[i].local_lease = false;
            }
            Action::Rejoin(n) => {
                let i = usize::from(n);
                s.nodes[i].incarnation += 1;
                s.nodes[i].local_lease = true;
                s.stored[i] = StoredNode {
                    incarnation: s.nodes[i].incarnation,
                    lease: true,
                };
            }
            Action::Restart(n, keep_files) => {
                let i = usize::from(n);
                let node = &mut s.nodes[i];
                node.incarnation += 1;
                node.local_lease = true;
                node.stalled = false;
                for act in &mut node.activations {
                    *act = None;
                }
                if !keep_files {
                    for file in &mut node.files {
                        file.clear();
                    }
                }
                s.stored[i] = StoredNode {
                    incarnation: node.incarnation,
                    lease: true,
                };
            }
        }
        Some(s)
    }

    fn properties(&self) -> Vec<Property<Self>> {
        vec![
            Property::always("every acknowledged append is in the log", |_, s: &State| {
                s.acked
                    .iter()
                    .all(|&(_, a, e, v)| s.actors[usize::from(a)].log.contains(&(e, v)))
            }),
            Property::always("one node acknowledges per epoch", |_, s: &State| {
                s.acked.iter().all(|&(n, a, e, _)| {
                    s.acked
                        .iter()
                        .all(|&(m, b, f, _)| a != b || e != f || n == m)
                })
            }),
            Property::always("epochs never decrease along the log", |_, s: &State| {
                s.actors
                    .iter()
                    .all(|a| a.log.windows(2).all(|w| w[0].0 <= w[1].0))
            }),
            Property::always("reads see every acknowledged append", |_, s: &State| {
                !s.stale_read
            }),
            Property::always("files hold only what the log holds", |_, s: &State| {
                !s.diverged
            }),
            Property::sometimes("a takeover happens", |_, s: &State| {
                s.acked
                    .iter()
                    .any(|&(n, a, _, _)| s.acked.iter().any(|&(m, b, _, _)| a == b && n != m))
            }),
        ]
    }
}
