//! `examples/node.rs` runs as the README says it does (its own assertions: the
//! region carries each block's price, simulations leave it untouched, the
//! consumer's sum is right, nothing stays locked).

#[path = "../../../examples/node.rs"]
#[allow(dead_code, unreachable_pub)]
mod node;

#[test]
fn the_node_example_runs() {
    node::main().expect("the example runs");
}
