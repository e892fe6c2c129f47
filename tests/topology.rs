//! The NATS topology tests (docs/scale-out.md): three nats-server nodes,
//! HAProxy and several bridge processes each. A crate of their own, so that
//! cargo runs them after the others, alone on the machine: beside the rest
//! of the suite a node's start-up and a cluster's leader election miss
//! their deadlines on two cores. Run one with
//! `cargo test --test topology scale_out::`.

#[path = "it/common/mod.rs"]
#[allow(dead_code)] // this crate uses part of the shared helpers
mod common;
#[path = "topology/jetstream.rs"]
mod jetstream;
#[path = "topology/scale_out.rs"]
mod scale_out;
